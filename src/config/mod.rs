//! Configuration: built-in defaults, then `docobo.toml`, then `DOCOBO_…` environment
//! variables, then `DOCOBO_…_FILE` files for secrets (Docker/systemd secrets).
//!
//! Environment names are `DOCOBO_<SECTION>__<KEY>` in upper case, e.g.
//! `DOCOBO_SERVER__PORT=8080` or `DOCOBO_DISCORD__TOKEN_FILE=/run/secrets/token`; a name with
//! two underscores that is no setting (`DOCOBO_SERVER__PROT`) is refused with the closest one.
//! Other `DOCOBO_` variables (`DOCOBO_CONFIG`, a script's `DOCOBO_BIN`) are not settings and
//! are ignored, except a setting's name with one underscore (`DOCOBO_SERVER_PORT`), refused
//! with the right name.
//!
//! `discord.token` is required only for the commands that talk to Discord ([`Purpose`]).
//!
//! Loading never stops at the first problem: every problem is collected and reported at once,
//! each with where the value came from and how to fix it. Secrets are [`SecretString`]s, whose
//! `Debug` prints `[REDACTED]`; no error message ever contains a secret's value.
//!
//! Layout: `keys.rs` declares every key once (and so the section structs re-exported here),
//! `sources.rs` reads the file and the environment, `getters.rs` says how each kind of value
//! is read and checked, `reader.rs` holds the raw values and collects the problems.

mod getters;
mod keys;
mod reader;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use secrecy::SecretString;

pub use keys::{
    AlertsConfig, DashboardConfig, DatabaseConfig, DiscordConfig, DoctorConfig, LogConfig,
    PluginsConfig, SecretsConfig, ServerConfig, SubscriptionsConfig,
};

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
    pub dashboard: DashboardConfig,
    pub doctor: DoctorConfig,
    pub alerts: AlertsConfig,
}

/// The hosts the built-in plugins need.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["api.polar.sh", "sandbox-api.polar.sh", "my.sepay.vn"];

impl DiscordConfig {
    /// The bot token.
    ///
    /// # Errors
    /// It is not set: only a configuration loaded for [`Purpose::Local`] can lack it.
    pub fn bot_token(&self) -> anyhow::Result<&SecretString> {
        self.token.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "discord.token is not set. Fix: set it in [discord] of docobo.toml, or DOCOBO_DISCORD__TOKEN, or DOCOBO_DISCORD__TOKEN_FILE naming a file that holds it"
            )
        })
    }

    /// How long one REST call to Discord may take (`discord.timeout_ms`).
    #[must_use]
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.timeout_ms))
    }
}

impl SubscriptionsConfig {
    #[must_use]
    pub fn grace_ms(self) -> i64 {
        i64::from(self.grace_period_hours) * 3_600_000
    }

    /// How often the reminders are looked for.
    #[must_use]
    pub fn reminder_every(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.reminder_check_secs))
    }
}

/// What the command about to run needs from the configuration, beyond what every command
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// It talks to Discord (`serve`, `invite`), or checks what `serve` reads
    /// (`check-config`): `discord.token` is required.
    Discord,
    /// It works on this machine only (`migrate`, `backup`, `restore`, `forget-guild`,
    /// `health`, `plugin list`): `discord.token` may be missing.
    Local,
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

/// The names of every setting, as `section.key` (for docs and tests).
#[must_use]
pub fn keys() -> Vec<String> {
    keys::KEYS.iter().map(keys::Key::id).collect()
}

impl Config {
    /// Loads the configuration for a command that talks to Discord ([`Purpose::Discord`]):
    /// `discord.token` is required.
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
        Self::load_for(Purpose::Discord, file, file_required, env)
    }

    /// Loads the configuration for `purpose`: as [`Config::load`], but for
    /// [`Purpose::Local`] a missing `discord.token` is no problem.
    ///
    /// # Errors
    /// Every problem found, at once.
    pub fn load_for(
        purpose: Purpose,
        file: Option<&Path>,
        file_required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (raw, problems) = sources::read(file, file_required, env);
        let mut reader = reader::Reader::new(raw, problems, purpose);
        let config = Self::read(&mut reader);
        let problems = reader.finish();
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Reads every section (all of them, so that every problem is reported).
    fn read(r: &mut reader::Reader) -> Option<Self> {
        let server = ServerConfig::read(r);
        let database = DatabaseConfig::read(r);
        let discord = DiscordConfig::read(r);
        let subscriptions = SubscriptionsConfig::read(r);
        let plugins = PluginsConfig::read(r);
        let secrets = SecretsConfig::read(r);
        let providers = r.provider_credentials();
        let log = LogConfig::read(r);
        let dashboard = DashboardConfig::read(r);
        let doctor = DoctorConfig::read(r);
        let alerts = AlertsConfig::read(r);
        Some(Self {
            server: server?,
            database: database?,
            discord: discord?,
            subscriptions: subscriptions?,
            plugins: plugins?,
            secrets: secrets?,
            providers: providers?,
            log: log?,
            dashboard: dashboard?,
            doctor: doctor?,
            alerts: alerts?,
        })
    }
}
