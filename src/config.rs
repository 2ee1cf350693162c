//! Configuration: built-in defaults, then `docobo.toml`, then `DOCOBO_…` environment
//! variables, then `DOCOBO_…_FILE` files for secrets (Docker/systemd secrets).
//!
//! Environment names are `DOCOBO_<SECTION>__<KEY>` in upper case, e.g.
//! `DOCOBO_SERVER__PORT=8080` or `DOCOBO_DISCORD__TOKEN_FILE=/run/secrets/token`.
//!
//! Loading never stops at the first problem: every problem is collected and reported at once,
//! each with where the value came from and how to fix it. Secrets are [`SecretString`]s, whose
//! `Debug` prints `[REDACTED]`; no error message ever contains a secret's value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// The whole configuration, validated. Passed by value into [`crate::app::App::build`].
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub discord: DiscordConfig,
    pub subscriptions: SubscriptionsConfig,
    pub plugins: PluginsConfig,
    pub secrets: SecretsConfig,
    /// Operator-level provider credentials (`[providers.<id>]`), for
    /// `POST /webhooks/{provider}` without a guild key. Every value is treated as a secret.
    pub providers: BTreeMap<String, Vec<(String, SecretString)>>,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// Extra provider plugins (`*.wasm`) loaded at start, beside the built-in ones.
    pub dir: PathBuf,
    /// Where compiled plugins are cached (created with mode 0700).
    pub cache_dir: PathBuf,
    /// Hosts plugins may reach with `http-fetch` (each plugin must also declare them).
    pub allowed_hosts: Vec<String>,
    /// Allow plugins plain http to loopback (only for tests against local fakes).
    pub allow_loopback_http: bool,
    /// Linear memory per plugin call, in MiB.
    pub memory_limit_mb: u32,
    /// CPU time a plugin call may spend in WebAssembly, in milliseconds.
    pub cpu_deadline_ms: u32,
    /// Wall-clock limit of a whole plugin call (including its HTTP requests), in milliseconds.
    pub call_timeout_ms: u32,
}

/// The hosts the built-in plugins need.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["api.polar.sh", "sandbox-api.polar.sh", "my.sepay.vn"];

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// The URL at which providers reach this server (no trailing slash), e.g.
    /// `https://docobo.example.org`. Needed by `/setup` to print webhook URLs.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (IPs or networks).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests per minute from one client IP; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Longest time a request may take, in milliseconds.
    pub request_timeout_ms: u32,
}

#[derive(Debug, Clone)]
pub struct SecretsConfig {
    /// The credential encryption key (base64, 32 bytes); else `key_path` is used.
    pub key: Option<SecretString>,
    /// Where the key is kept (created with mode 0600 on first run).
    pub key_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The SQLite file; its folder is created if missing.
    pub path: PathBuf,
    /// How long a connection waits for a lock before failing, in milliseconds.
    pub busy_timeout_ms: u32,
}

#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The bot token.
    pub token: SecretString,
    /// Ask for the privileged GUILD_MEMBERS intent (instant re-grant when a member rejoins).
    pub guild_members_intent: bool,
    /// Where Discord's API is reached instead of `https://discord.com` (a local fake in
    /// tests). Setting it turns serenity's client-side rate limiter off (the limiter ignores
    /// the override), so it is not meant for production.
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct SubscriptionsConfig {
    /// How long a `past_due` (or late-renewing) subscription keeps its role, in hours.
    pub grace_period_hours: u32,
    /// How often the role-sync sweep re-checks members' roles at Discord, in seconds.
    pub sweep_interval_secs: u32,
    /// How often the providers' `poll` runs to catch missed webhooks, in seconds.
    pub poll_interval_secs: u32,
}

impl SubscriptionsConfig {
    #[must_use]
    pub fn grace_ms(self) -> i64 {
        i64::from(self.grace_period_hours) * 3_600_000
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter (`info`, `docobo=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    Json,
    Text,
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `section.key`, or the file for syntax errors.
    pub key: String,
    /// Where the offending value came from (`docobo.toml`, `env DOCOBO_SERVER__PORT`, …).
    pub origin: Option<String>,
    /// What is wrong and how to fix it. Never contains a secret's value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{} (from {origin}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// What kind of value a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Secret,
    Bool,
    Integer,
    List,
}

/// Every key Docobo reads. `docobo.example.toml` documents each one (a test checks).
const KEYS: &[(&str, &str, Kind)] = &[
    ("server", "bind", Kind::Text),
    ("server", "port", Kind::Integer),
    ("server", "public_url", Kind::Text),
    ("server", "trusted_proxies", Kind::List),
    ("server", "rate_limit_per_minute", Kind::Integer),
    ("server", "request_timeout_ms", Kind::Integer),
    ("secrets", "key", Kind::Secret),
    ("secrets", "key_path", Kind::Text),
    ("database", "path", Kind::Text),
    ("database", "busy_timeout_ms", Kind::Integer),
    ("discord", "token", Kind::Secret),
    ("discord", "guild_members_intent", Kind::Bool),
    ("discord", "api_url", Kind::Text),
    ("subscriptions", "grace_period_hours", Kind::Integer),
    ("subscriptions", "sweep_interval_secs", Kind::Integer),
    ("subscriptions", "poll_interval_secs", Kind::Integer),
    ("plugins", "dir", Kind::Text),
    ("plugins", "cache_dir", Kind::Text),
    ("plugins", "allowed_hosts", Kind::List),
    ("plugins", "allow_loopback_http", Kind::Bool),
    ("plugins", "memory_limit_mb", Kind::Integer),
    ("plugins", "cpu_deadline_ms", Kind::Integer),
    ("plugins", "call_timeout_ms", Kind::Integer),
    ("log", "level", Kind::Text),
    ("log", "format", Kind::Text),
];

/// Environment variables with the `DOCOBO_` prefix that are not settings.
const NON_SETTING_ENV: &[&str] = &["DOCOBO_CONFIG"];

/// The names of every setting, as `section.key` (for docs and tests).
#[must_use]
pub fn keys() -> Vec<String> {
    KEYS.iter().map(|(s, k, _)| format!("{s}.{k}")).collect()
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: RawValue,
    origin: String,
}

#[derive(Debug, Clone)]
enum RawValue {
    Toml(toml::Value),
    /// From the environment: text, converted to the key's kind.
    Env(String),
}

impl Config {
    /// Loads the configuration.
    ///
    /// `file`: the TOML file, if any (a missing file is an error only when `file_required`).
    /// `env`: the process environment (passed in so tests need not mutate the real one).
    ///
    /// # Errors
    /// Every problem found, at once.
    pub fn load(
        file: Option<&Path>,
        file_required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut raw: BTreeMap<(String, String), Raw> = BTreeMap::new();
        if let Some(path) = file {
            read_file(path, file_required, &mut raw, &mut problems);
        }
        read_env(env, &mut raw, &mut problems);
        let mut reader = Reader {
            raw,
            problems,
            used: BTreeSet::new(),
        };
        let config = reader.build();
        reader.report_unknown();
        match config {
            Some(config) if reader.problems.is_empty() => Ok(config),
            _ => Err(ConfigError {
                problems: reader.problems,
            }),
        }
    }
}

fn read_file(
    path: &Path,
    required: bool,
    raw: &mut BTreeMap<(String, String), Raw>,
    problems: &mut Vec<ConfigProblem>,
) {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return,
        Err(e) => {
            problems.push(ConfigProblem {
                key: shown,
                origin: None,
                message: format!(
                    "cannot read the configuration file: {e}. Fix: create it (copy docobo.example.toml) or pass --config with the right path"
                ),
            });
            return;
        }
    };
    let table: toml::Table = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            problems.push(ConfigProblem {
                key: shown,
                origin: None,
                message: format!("is not valid TOML: {}", e.to_string().trim()),
            });
            return;
        }
    };
    for (section, value) in table {
        let toml::Value::Table(entries) = value else {
            problems.push(ConfigProblem {
                key: section.clone(),
                origin: Some(shown.clone()),
                message: format!(
                    "expected a [{section}] table. Fix: see docobo.example.toml for the layout"
                ),
            });
            continue;
        };
        for (key, value) in entries {
            raw.insert(
                (section.clone(), key),
                Raw {
                    value: RawValue::Toml(value),
                    origin: shown.clone(),
                },
            );
        }
    }
}

fn read_env(
    env: impl IntoIterator<Item = (String, String)>,
    raw: &mut BTreeMap<(String, String), Raw>,
    problems: &mut Vec<ConfigProblem>,
) {
    // `_FILE` variables are applied after plain ones, so they win (file < env < _FILE).
    let mut files = Vec::new();
    for (name, value) in env {
        if NON_SETTING_ENV.contains(&name.as_str()) {
            continue;
        }
        let Some(rest) = name.strip_prefix("DOCOBO_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            problems.push(ConfigProblem {
                key: name.clone(),
                origin: Some(format!("env {name}")),
                message: "is not a Docobo setting. Fix: settings are named DOCOBO_<SECTION>__<KEY> (two underscores), e.g. DOCOBO_SERVER__PORT".into(),
            });
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if let Some(key) = key.strip_suffix("_file") {
            files.push((section, key.to_owned(), name, value));
            continue;
        }
        raw.insert(
            (section, key),
            Raw {
                value: RawValue::Env(value),
                origin: format!("env {name}"),
            },
        );
    }
    for (section, key, name, path) in files {
        let is_secret = section == "providers"
            || KEYS
                .iter()
                .any(|(s, k, kind)| *s == section && *k == key && *kind == Kind::Secret);
        if !is_secret {
            problems.push(ConfigProblem {
                key: format!("{section}.{key}"),
                origin: Some(format!("env {name}")),
                message:
                    "only secrets can be read from a _FILE variable. Fix: set the value directly"
                        .into(),
            });
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                raw.insert(
                    (section, key),
                    Raw {
                        value: RawValue::Env(text.trim_end_matches(['\n', '\r']).to_owned()),
                        origin: format!("env {name}"),
                    },
                );
            }
            Err(e) => problems.push(ConfigProblem {
                key: format!("{section}.{key}"),
                origin: Some(format!("env {name}")),
                message: format!("cannot read {path}: {e}. Fix: point {name} at a readable file"),
            }),
        }
    }
}

/// Reads typed values out of the raw layers, collecting problems.
struct Reader {
    raw: BTreeMap<(String, String), Raw>,
    problems: Vec<ConfigProblem>,
    used: BTreeSet<(String, String)>,
}

impl Reader {
    fn build(&mut self) -> Option<Config> {
        let bind = self.parsed("server", "bind", "0.0.0.0", |s| {
            s.parse::<IpAddr>()
                .map_err(|_| "is not an IP address. Fix: use 0.0.0.0 (all interfaces) or 127.0.0.1 (this machine only)".to_owned())
        });
        let port = self.integer("server", "port", 3000, 0, i64::from(u16::MAX));
        let public_url = self.optional_text("server", "public_url").and_then(|url| {
            let trimmed = url.trim_end_matches('/').to_owned();
            if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
                Some(Some(trimmed))
            } else {
                self.problem("server", "public_url", format!("{url:?} is not an http(s) URL. Fix: the address providers reach, e.g. https://docobo.example.org"));
                None
            }
        });
        let db_path = self.text("database", "path", "data/docobo.db");
        let busy = self.integer("database", "busy_timeout_ms", 5000, 0, 600_000);
        let token = self.secret("discord", "token");
        let members = self.boolean("discord", "guild_members_intent", false);
        let api_url = self.optional_text("discord", "api_url").and_then(|url| {
            let trimmed = url.trim_end_matches('/').to_owned();
            if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
                Some(Some(trimmed))
            } else {
                self.problem(
                    "discord",
                    "api_url",
                    format!(
                        "{url:?} is not an http(s) URL. Fix: leave it unset to reach Discord itself"
                    ),
                );
                None
            }
        });
        let grace = self.integer("subscriptions", "grace_period_hours", 72, 0, 24 * 365);
        let sweep = self.integer("subscriptions", "sweep_interval_secs", 600, 1, 86_400);
        let poll = self.integer("subscriptions", "poll_interval_secs", 900, 1, 86_400);
        let plugins_dir = self.text("plugins", "dir", "data/plugins");
        let cache_dir = self.text("plugins", "cache_dir", "data/cache");
        let allowed_hosts = self.host_list("plugins", "allowed_hosts", DEFAULT_ALLOWED_HOSTS);
        let trusted = self.network_list("server", "trusted_proxies");
        let rate = self.integer("server", "rate_limit_per_minute", 100, 0, 1_000_000);
        let timeout = self.integer("server", "request_timeout_ms", 10_000, 100, 300_000);
        let key = self.optional_secret("secrets", "key");
        let key_file = self.text("secrets", "key_path", "data/docobo.key");
        let credentials = self.provider_credentials();
        let loopback = self.boolean("plugins", "allow_loopback_http", false);
        let memory = self.integer("plugins", "memory_limit_mb", 16, 1, 1024);
        let cpu = self.integer("plugins", "cpu_deadline_ms", 2000, 10, 60_000);
        let call = self.integer("plugins", "call_timeout_ms", 15_000, 100, 120_000);
        let level = self.text("log", "level", "info");
        let format = self.parsed("log", "format", "auto", |s| match s {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!(
                "{other:?} is not a log format. Fix: use auto, json or text"
            )),
        });
        Some(Config {
            server: ServerConfig {
                bind: bind?,
                port: u16::try_from(port?).ok()?,
                public_url: public_url.unwrap_or(None),
                trusted_proxies: trusted?,
                rate_limit_per_minute: u32::try_from(rate?).ok()?,
                request_timeout_ms: u32::try_from(timeout?).ok()?,
            },
            secrets: SecretsConfig {
                key: key.ok()?,
                key_path: PathBuf::from(key_file?),
            },
            providers: credentials?,
            database: DatabaseConfig {
                path: PathBuf::from(db_path?),
                busy_timeout_ms: u32::try_from(busy?).ok()?,
            },
            discord: DiscordConfig {
                token: token?,
                guild_members_intent: members?,
                api_url: api_url.unwrap_or(None),
            },
            subscriptions: SubscriptionsConfig {
                grace_period_hours: u32::try_from(grace?).ok()?,
                sweep_interval_secs: u32::try_from(sweep?).ok()?,
                poll_interval_secs: u32::try_from(poll?).ok()?,
            },
            plugins: PluginsConfig {
                dir: PathBuf::from(plugins_dir?),
                cache_dir: PathBuf::from(cache_dir?),
                allowed_hosts: allowed_hosts?,
                allow_loopback_http: loopback?,
                memory_limit_mb: u32::try_from(memory?).ok()?,
                cpu_deadline_ms: u32::try_from(cpu?).ok()?,
                call_timeout_ms: u32::try_from(call?).ok()?,
            },
            log: LogConfig {
                level: level?,
                format: format?,
            },
        })
    }

    fn take(&mut self, section: &str, key: &str) -> Option<Raw> {
        let id = (section.to_owned(), key.to_owned());
        self.used.insert(id.clone());
        self.raw.get(&id).cloned()
    }

    fn problem(&mut self, section: &str, key: &str, message: String) {
        let origin = self
            .raw
            .get(&(section.to_owned(), key.to_owned()))
            .map(|r| r.origin.clone());
        self.problems.push(ConfigProblem {
            key: format!("{section}.{key}"),
            origin,
            message,
        });
    }

    /// A text value; `None` when absent.
    fn optional_text(&mut self, section: &str, key: &str) -> Option<String> {
        match self.take(section, key)?.value {
            RawValue::Env(s) | RawValue::Toml(toml::Value::String(s)) => {
                (!s.trim().is_empty()).then_some(s)
            }
            RawValue::Toml(other) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected text, found {}. Fix: quote the value",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn text(&mut self, section: &str, key: &str, default: &str) -> Option<String> {
        let before = self.problems.len();
        let value = self.optional_text(section, key);
        if self.problems.len() > before {
            return None;
        }
        Some(value.unwrap_or_else(|| default.to_owned()))
    }

    fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.text(section, key, default)?;
        match parse(text.trim()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.problem(section, key, message);
                None
            }
        }
    }

    fn integer(
        &mut self,
        section: &str,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let value = match self.take(section, key).map(|r| r.value) {
            None => default,
            Some(RawValue::Toml(toml::Value::Integer(n))) => n,
            Some(RawValue::Env(s)) => {
                if let Ok(n) = s.trim().parse::<i64>() {
                    n
                } else {
                    self.problem(
                        section,
                        key,
                        format!(
                            "{s:?} is not a whole number. Fix: use a number from {min} to {max}"
                        ),
                    );
                    return None;
                }
            }
            Some(RawValue::Toml(other)) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected a whole number, found {}. Fix: use a number from {min} to {max}",
                        other.type_str()
                    ),
                );
                return None;
            }
        };
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.problem(
                section,
                key,
                format!("{value} is out of range. Fix: use a number from {min} to {max}"),
            );
            None
        }
    }

    fn boolean(&mut self, section: &str, key: &str, default: bool) -> Option<bool> {
        match self.take(section, key).map(|r| r.value) {
            None => Some(default),
            Some(RawValue::Toml(toml::Value::Boolean(b))) => Some(b),
            Some(RawValue::Env(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => {
                    self.problem(
                        section,
                        key,
                        format!("{s:?} is not true or false. Fix: use true or false"),
                    );
                    None
                }
            },
            Some(RawValue::Toml(other)) => {
                self.problem(
                    section,
                    key,
                    format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A list of strings; from the environment, comma-separated.
    fn text_list(&mut self, section: &str, key: &str, default: &[&str]) -> Option<Vec<String>> {
        match self.take(section, key).map(|r| r.value) {
            None => Some(default.iter().map(|s| (*s).to_owned()).collect()),
            Some(RawValue::Env(s)) => Some(
                s.split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect(),
            ),
            Some(RawValue::Toml(toml::Value::Array(values))) => {
                let mut items = Vec::new();
                for value in values {
                    if let toml::Value::String(s) = value {
                        items.push(s);
                    } else {
                        self.problem(section, key, format!("expected a list of strings, found a {} in it. Fix: quote every entry", value.type_str()));
                        return None;
                    }
                }
                Some(items)
            }
            Some(RawValue::Toml(other)) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected a list, found {}. Fix: write [\"…\", \"…\"]",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    /// A list of host names.
    fn host_list(&mut self, section: &str, key: &str, default: &[&str]) -> Option<Vec<String>> {
        let items = self.text_list(section, key, default)?;
        let bad: Vec<&String> = items
            .iter()
            .filter(|h| {
                h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            })
            .collect();
        if !bad.is_empty() {
            self.problem(section, key, format!("{bad:?} are not host names. Fix: list bare host names such as api.polar.sh (no scheme, port or path)"));
            return None;
        }
        Some(items.into_iter().map(|h| h.to_ascii_lowercase()).collect())
    }

    /// A list of IP addresses or networks (`10.0.0.0/8`).
    fn network_list(&mut self, section: &str, key: &str) -> Option<Vec<ipnet::IpNet>> {
        let items = self.text_list(section, key, &[])?;
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for item in items {
            match item.parse::<ipnet::IpNet>() {
                Ok(net) => nets.push(net),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                    Err(_) => bad.push(item),
                },
            }
        }
        if bad.is_empty() {
            Some(nets)
        } else {
            self.problem(section, key, format!("{bad:?} are not IP addresses or networks. Fix: use e.g. 127.0.0.1 or 10.0.0.0/8"));
            None
        }
    }

    /// An optional secret. Its value never appears in a problem.
    fn optional_secret(&mut self, section: &str, key: &str) -> Result<Option<SecretString>, ()> {
        match self.take(section, key).map(|r| r.value) {
            None => Ok(None),
            Some(RawValue::Env(s) | RawValue::Toml(toml::Value::String(s))) => {
                Ok((!s.trim().is_empty()).then(|| SecretString::from(s.trim().to_owned())))
            }
            Some(RawValue::Toml(other)) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected text, found {}. Fix: quote the value",
                        other.type_str()
                    ),
                );
                Err(())
            }
        }
    }

    /// `[providers.<id>]` tables: operator-level plugin credentials, every value a secret.
    fn provider_credentials(&mut self) -> Option<BTreeMap<String, Vec<(String, SecretString)>>> {
        let ids: Vec<(String, String)> = self
            .raw
            .keys()
            .filter(|(section, _)| section == "providers")
            .cloned()
            .collect();
        let mut out: BTreeMap<String, Vec<(String, SecretString)>> = BTreeMap::new();
        let mut ok = true;
        for (section, key) in ids {
            self.used.insert((section.clone(), key.clone()));
            let Some(raw) = self.raw.get(&(section.clone(), key.clone())).cloned() else {
                continue;
            };
            match raw.value {
                // From the file: `[providers.polar]` is a table under `providers`.
                RawValue::Toml(toml::Value::Table(table)) => {
                    for (field, value) in table {
                        if let toml::Value::String(text) = value {
                            out.entry(key.clone())
                                .or_default()
                                .push((field, SecretString::from(text)));
                        } else {
                            self.problems.push(ConfigProblem {
                                key: format!("providers.{key}.{field}"),
                                origin: Some(raw.origin.clone()),
                                message: format!(
                                    "expected text, found {}. Fix: quote the value",
                                    value.type_str()
                                ),
                            });
                            ok = false;
                        }
                    }
                }
                // From the environment: DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET.
                RawValue::Env(text) => {
                    if let Some((provider, field)) = key.split_once("__") {
                        out.entry(provider.to_owned())
                            .or_default()
                            .push((field.to_owned(), SecretString::from(text)));
                    } else {
                        self.problems.push(ConfigProblem {
                            key: format!("providers.{key}"),
                            origin: Some(raw.origin.clone()),
                            message: "Fix: name provider settings DOCOBO_PROVIDERS__<PROVIDER>__<FIELD>, e.g. DOCOBO_PROVIDERS__POLAR__WEBHOOK_SECRET".into(),
                        });
                        ok = false;
                    }
                }
                RawValue::Toml(other) => {
                    self.problems.push(ConfigProblem {
                        key: format!("providers.{key}"),
                        origin: Some(raw.origin.clone()),
                        message: format!("expected a [providers.{key}] table, found {}. Fix: see docobo.example.toml", other.type_str()),
                    });
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A required secret. Its value never appears in a problem.
    fn secret(&mut self, section: &str, key: &str) -> Option<SecretString> {
        let env_name = format!(
            "DOCOBO_{}__{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
        match self.take(section, key).map(|r| r.value) {
            Some(RawValue::Env(s) | RawValue::Toml(toml::Value::String(s)))
                if !s.trim().is_empty() =>
            {
                Some(SecretString::from(s.trim().to_owned()))
            }
            Some(RawValue::Toml(other)) if !matches!(other, toml::Value::String(_)) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "expected text, found {}. Fix: quote the value",
                        other.type_str()
                    ),
                );
                None
            }
            _ => {
                self.problem(
                    section,
                    key,
                    format!("is required. Fix: set {key} in [{section}] of docobo.toml, or the environment variable {env_name}, or {env_name}_FILE naming a file that holds it"),
                );
                None
            }
        }
    }

    /// Keys nobody read: typos, or settings from a newer version.
    fn report_unknown(&mut self) {
        let unknown: Vec<_> = self
            .raw
            .iter()
            .filter(|(id, _)| !self.used.contains(*id))
            .map(|((s, k), raw)| (format!("{s}.{k}"), raw.origin.clone()))
            .collect();
        for (key, origin) in unknown {
            let hint = closest_key(&key)
                .map(|k| format!(" Did you mean {k}?"))
                .unwrap_or_default();
            self.problems.push(ConfigProblem {
                key,
                origin: Some(origin),
                message: format!("is not a Docobo setting.{hint} Fix: remove it or see docobo.example.toml for every setting"),
            });
        }
    }
}

/// The known key closest to a misspelt one (by edit distance over `section.key`).
fn closest_key(wrong: &str) -> Option<String> {
    KEYS.iter()
        .map(|(s, k, _)| format!("{s}.{k}"))
        .map(|known| (strsim::damerau_levenshtein(wrong, &known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn defaults_apply_when_only_the_token_is_given() {
        let config =
            Config::load(None, false, env(&[("DOCOBO_DISCORD__TOKEN", "t0k")])).expect("valid");
        assert_eq!(config.server.port, 3000);
        assert_eq!(config.server.bind.to_string(), "0.0.0.0");
        assert_eq!(config.database.path, PathBuf::from("data/docobo.db"));
        assert_eq!(config.subscriptions.grace_period_hours, 72);
        assert_eq!(config.log.format, LogFormat::Auto);
        assert!(!config.discord.guild_members_intent);
        assert_eq!(config.server.public_url, None);
        assert_eq!(config.plugins.allowed_hosts, DEFAULT_ALLOWED_HOSTS);
        assert!(!config.plugins.allow_loopback_http);
    }

    #[test]
    fn host_lists_come_from_toml_arrays_or_comma_separated_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "docobo.toml",
            "[plugins]\nallowed_hosts = [\"API.polar.sh\"]\n",
        );
        let from_file =
            Config::load(Some(&file), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")])).expect("valid");
        assert_eq!(from_file.plugins.allowed_hosts, ["api.polar.sh"]);
        let from_env = Config::load(
            Some(&file),
            true,
            env(&[
                ("DOCOBO_DISCORD__TOKEN", "t"),
                ("DOCOBO_PLUGINS__ALLOWED_HOSTS", "a.example, b.example"),
            ]),
        )
        .expect("valid");
        assert_eq!(from_env.plugins.allowed_hosts, ["a.example", "b.example"]);
        let bad = Config::load(
            None,
            false,
            env(&[
                ("DOCOBO_DISCORD__TOKEN", "t"),
                ("DOCOBO_PLUGINS__ALLOWED_HOSTS", "https://x.example/path"),
            ]),
        )
        .expect_err("not a host");
        assert!(bad.to_string().contains("plugins.allowed_hosts"), "{bad}");
    }

    #[test]
    fn the_file_overrides_defaults_env_overrides_the_file_and_file_secrets_override_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "docobo.toml",
            "[server]\nport = 4000\nbind = \"127.0.0.1\"\npublic_url = \"https://pay.example.org/\"\n[discord]\ntoken = \"from-file\"\n",
        );
        let secret = write(&dir, "token", "from-secret-file\n");

        let only_file = Config::load(Some(&file), true, env(&[])).expect("valid");
        assert_eq!(only_file.server.port, 4000);
        assert_eq!(
            only_file.server.public_url.as_deref(),
            Some("https://pay.example.org")
        );
        assert_eq!(only_file.discord.token.expose_secret(), "from-file");

        let with_env = Config::load(
            Some(&file),
            true,
            env(&[
                ("DOCOBO_SERVER__PORT", "5000"),
                ("DOCOBO_DISCORD__TOKEN", "from-env"),
            ]),
        )
        .expect("valid");
        assert_eq!(with_env.server.port, 5000);
        assert_eq!(
            with_env.server.bind.to_string(),
            "127.0.0.1",
            "untouched keys keep the file's value"
        );
        assert_eq!(with_env.discord.token.expose_secret(), "from-env");

        let secret_path = secret.display().to_string();
        let with_file_secret = Config::load(
            Some(&file),
            true,
            env(&[
                ("DOCOBO_DISCORD__TOKEN", "from-env"),
                ("DOCOBO_DISCORD__TOKEN_FILE", &secret_path),
            ]),
        )
        .expect("valid");
        assert_eq!(
            with_file_secret.discord.token.expose_secret(),
            "from-secret-file"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_a_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            &dir,
            "docobo.toml",
            "[server]\nport = \"eighty\"\nbind = \"everywhere\"\nprot = 1\n[log]\nformat = \"xml\"\n",
        );
        let err = Config::load(
            Some(&file),
            true,
            env(&[
                ("DOCOBO_DATABASE__BUSY_TIMEOUT_MS", "soon"),
                ("DOCOBO_DISCORD__GUILD_MEMBERS_INTENT", "maybe"),
                ("DOCOBO_NONSENSE", "1"),
            ]),
        )
        .expect_err("invalid");
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "server.port",
            "server.bind",
            "server.prot",
            "log.format",
            "database.busy_timeout_ms",
            "discord.guild_members_intent",
            "discord.token",
            "DOCOBO_NONSENSE",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        assert_eq!(err.problems.len(), 8, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with("the configuration has 8 problems:"),
            "{text}"
        );
        assert!(text.contains("Did you mean server.port?"), "{text}");
        assert!(text.contains("DOCOBO_DISCORD__TOKEN_FILE"), "{text}");
        assert!(
            text.contains("from env DOCOBO_DATABASE__BUSY_TIMEOUT_MS"),
            "{text}"
        );
        for problem in &err.problems {
            assert!(problem.message.contains("Fix:"), "no fix in {problem}");
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_output_or_errors() {
        let config = Config::load(
            None,
            false,
            env(&[("DOCOBO_DISCORD__TOKEN", "hunter2-secret")]),
        )
        .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2-secret"));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "docobo.toml", "[discord]\ntoken = 12345678\n");
        let err = Config::load(Some(&file), true, env(&[])).expect_err("not text");
        assert!(!err.to_string().contains("12345678"), "{err}");
    }

    #[test]
    fn a_missing_or_broken_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.toml");
        let err = Config::load(Some(&missing), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
            .expect_err("required file");
        assert!(
            err.to_string()
                .contains("cannot read the configuration file"),
            "{err}"
        );
        // Optional and missing: defaults.
        assert!(
            Config::load(
                Some(&missing),
                false,
                env(&[("DOCOBO_DISCORD__TOKEN", "t")])
            )
            .is_ok()
        );
        let broken = write(&dir, "broken.toml", "[server\nport = 1");
        let err = Config::load(Some(&broken), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
            .expect_err("syntax");
        assert!(err.to_string().contains("is not valid TOML"), "{err}");
        let unreadable = Config::load(
            None,
            false,
            env(&[("DOCOBO_DISCORD__TOKEN_FILE", "/nonexistent/secret")]),
        )
        .expect_err("unreadable");
        assert!(
            unreadable
                .to_string()
                .contains("cannot read /nonexistent/secret"),
            "{unreadable}"
        );
    }

    #[test]
    fn the_example_file_documents_every_key_and_loads() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docobo.example.toml");
        let text = std::fs::read_to_string(&example).expect("docobo.example.toml exists");
        for (section, key, _) in KEYS {
            assert!(
                text.contains(&format!("[{section}]")),
                "[{section}] not in the example"
            );
            assert!(
                text.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))),
                "{section}.{key} is not documented in docobo.example.toml"
            );
        }
        let config = Config::load(Some(&example), true, env(&[("DOCOBO_DISCORD__TOKEN", "t")]))
            .expect("the example loads once the token is filled");
        assert_eq!(config.server.port, 3000);
    }
}
