//! The one table of settings. Each key is declared here once: its doc comment, its type,
//! how it is read (default, bounds, check) and where its problems are listed. From that the
//! `settings!` macro makes the public section structs, their readers and [`KEYS`], the list
//! behind [`super::keys()`], the `_FILE` rule, the "did you mean" suggestions and the test
//! that `docobo.example.toml` documents every key.
//!
//! To add a setting: add one entry to its section below (and document it in
//! `docobo.example.toml`; a test fails until you do).

use std::net::IpAddr;
use std::path::PathBuf;

use secrecy::SecretString;

use super::getters::{
    DiscordSecret, Flag, Getter, Hosts, HttpUrl, Networks, Parsed, Secret, SecretUrl, Text, Whole,
};
use super::reader::{Reader, Reported};
use super::{DEFAULT_ALLOWED_HOSTS, LogFormat};
use crate::db::Synchronous;

/// What kind of value a key holds (a secret may come from a `_FILE` variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Secret,
    Bool,
    Integer,
    List,
}

/// One setting: `name` in `[section]`, or `DOCOBO_<SECTION>__<NAME>` in the environment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    pub(super) section: &'static str,
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Where this key's problems are listed among all keys' (smaller first).
    pub(super) rank: u8,
}

impl Key {
    /// `section.name`, as problems and suggestions show it.
    pub(super) fn id(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// The environment variable that sets it.
    pub(super) fn env_name(&self) -> String {
        format!(
            "DOCOBO_{}__{}",
            self.section.to_ascii_uppercase(),
            self.name.to_ascii_uppercase()
        )
    }
}

/// Whether `[section] name` is a secret, so that it may be read from a `_FILE` variable.
pub(super) fn is_secret(section: &str, name: &str) -> bool {
    KEYS.iter()
        .any(|k| k.section == section && k.name == name && k.kind == Kind::Secret)
}

/// The `[providers.<id>]` tables are not keys of the table (their ids and fields are the
/// plugins'); their problems are listed between `secrets.key_path` and
/// `plugins.allow_loopback_http`.
pub(super) const PROVIDERS_RANK: u8 = 20;

const fn kind_of<T, G: Getter<T>>(_: &G) -> Kind {
    G::KIND
}

/// `settings! { pub struct Name in section { /// doc  RANK key: Type = getter, … } … }`.
///
/// The getter (see `getters.rs`) gives the default and the checks; the field's type picks
/// what it yields (`Text` as a `String` or a `PathBuf`, `Whole` as any integer type). RANK is
/// where the key's problems are listed: the order `check-config` has always printed them in.
/// A new key takes the next free number.
macro_rules! settings {
    ($(
        $(#[$meta:meta])*
        pub struct $Section:ident in $section:ident {
            $(
                $(#[$field_meta:meta])*
                $rank:literal $key:ident: $T:ty = $getter:expr
            ),+ $(,)?
        }
    )+) => {
        $(
            $(#[$meta])*
            pub struct $Section {
                $( $(#[$field_meta])* pub $key: $T, )+
            }

            impl $Section {
                /// Reads every key of the section (all of them, so that every problem is
                /// reported), then the section if none had a problem.
                pub(super) fn read(r: &mut Reader) -> Option<Self> {
                    $(
                        let $key: Result<$T, Reported> =
                            $getter.read(r, &settings!(@key $section $key: $T = $getter, $rank));
                    )+
                    Some(Self { $( $key: $key.ok()?, )+ })
                }
            }
        )+

        /// Every key Docobo reads, section by section. `docobo.example.toml` documents each
        /// one (a test checks).
        pub(super) const KEYS: &[Key] = &[
            $($( settings!(@key $section $key: $T = $getter, $rank), )+)+
        ];
    };
    (@key $section:ident $key:ident: $T:ty = $getter:expr, $rank:literal) => {
        Key {
            section: stringify!($section),
            name: stringify!($key),
            kind: kind_of::<$T, _>(&$getter),
            rank: $rank,
        }
    };
}

settings! {
    #[derive(Debug, Clone)]
    pub struct ServerConfig in server {
        /// Address to listen on.
        1 bind: IpAddr = Parsed("0.0.0.0", ip_address),
        /// Port to listen on; 0 picks a free one (tests).
        2 port: u16 = Whole { default: 3000, range: 0..=65_535 },
        /// The URL at which providers reach this server (no trailing slash), e.g.
        /// `https://docobo.example.org`. Needed by `/setup` to print webhook URLs.
        3 public_url: Option<String> =
            HttpUrl("the address providers reach, e.g. https://docobo.example.org"),
        /// Reverse proxies whose `X-Forwarded-For` is believed (IPs or networks).
        15 trusted_proxies: Vec<ipnet::IpNet> = Networks,
        /// Requests per minute from one client IP; 0 turns the limit off.
        16 rate_limit_per_minute: u32 = Whole { default: 100, range: 0..=1_000_000 },
        /// Longest time a request may take, in milliseconds.
        17 request_timeout_ms: u32 = Whole { default: 10_000, range: 100..=300_000 },
        /// Longest time a client may take to send a request's head (line and headers), in
        /// milliseconds; the connection is closed past it (slow-loris clients).
        60 header_timeout_ms: u32 = Whole { default: 10_000, range: 100..=300_000 },
        /// Longest time a client may take to send a webhook's whole body, in milliseconds
        /// (408 past it).
        61 body_timeout_ms: u32 = Whole { default: 5_000, range: 100..=300_000 },
        /// Deliveries refused for their signature per minute to one webhook URL before its
        /// further deliveries get 429 without being checked; 0 turns the budget off.
        62 bad_signatures_per_minute: u32 = Whole { default: 10, range: 0..=1_000_000 },
        /// The same budget per client IP, across URLs; 0 turns it off.
        63 bad_signatures_per_ip_per_minute: u32 = Whole { default: 30, range: 0..=1_000_000 },
        /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (401 without).
        64 metrics_token: Option<SecretString> = Secret,
        /// How long `/setup`'s "Verify now" waits for a delivery to the guild's webhook URL,
        /// in seconds (below Discord's 15 minutes, after which the reply cannot be edited).
        74 verify_wait_secs: u32 = Whole { default: 600, range: 1..=840 },
    }

    #[derive(Debug, Clone)]
    pub struct SecretsConfig in secrets {
        /// The credential encryption key (base64, 32 bytes); else `key_path` is used.
        18 key: Option<SecretString> = Secret,
        /// Where the key is kept (created with mode 0600 on first run).
        19 key_path: PathBuf = Text("data/docobo.key"),
    }

    #[derive(Debug, Clone)]
    pub struct DatabaseConfig in database {
        /// The SQLite file; its folder is created if missing.
        4 path: PathBuf = Text("data/docobo.db"),
        /// How long a connection waits for a lock before failing, in milliseconds.
        5 busy_timeout_ms: u32 = Whole { default: 5000, range: 0..=600_000 },
        /// When a write counts as done: `full` (after it is on stable storage; a power cut
        /// loses nothing acknowledged) or `normal` (faster on slow cards, but a power cut loses
        /// the writes since the last checkpoint, payments the provider was told were received).
        40 synchronous: Synchronous = Parsed("full", synchronous),
        /// How long deliveries (`webhook_events`) and ended subscriptions are kept, in days;
        /// a subscription's deliveries stay while it runs and this long after it ended. 0 keeps
        /// everything for ever.
        41 keep_days: u32 = Whole { default: 395, range: 0..=36_500 },
        /// The folder of the dashboard's backups (`/dashboard/backups` takes, lists and
        /// downloads them), made owner-only when the first is taken. Unset: `backups` in the
        /// database file's folder (`data/backups`).
        80 backup_dir: Option<PathBuf> = Parsed("", optional_path),
    }

    #[derive(Debug, Clone)]
    pub struct DiscordConfig in discord {
        /// The bot token. Only the commands that talk to Discord need it (`serve`, `invite`,
        /// and `check-config`, which checks what `serve` reads): see [`super::Purpose`].
        6 token: Option<SecretString> = DiscordSecret,
        /// Ask for the privileged GUILD_MEMBERS intent (instant re-grant when a member rejoins).
        7 guild_members_intent: bool = Flag(false),
        /// Where Discord's API is reached instead of `https://discord.com` (a local fake in
        /// tests). Setting it turns the Discord client's own rate limiter off (the limiter ignores
        /// the override), so it is not meant for production.
        8 api_url: Option<String> = HttpUrl("leave it unset to reach Discord itself"),
        /// How long one call to Discord may take before it counts as failed (and is retried),
        /// in milliseconds: each REST request; the gateway gets twice as long to reach READY.
        27 timeout_ms: u32 = Whole { default: 15_000, range: 100..=120_000 },
    }

    #[derive(Debug, Clone, Copy)]
    pub struct SubscriptionsConfig in subscriptions {
        /// How long a `past_due` (or late-renewing) subscription keeps its role, in hours.
        9 grace_period_hours: u32 = Whole { default: 72, range: 0..=24 * 365 },
        /// How often the role-sync sweep re-checks members' roles at Discord, in seconds.
        10 sweep_interval_secs: u32 = Whole { default: 600, range: 1..=86_400 },
        /// How often the providers' `poll` runs to catch missed webhooks, in seconds.
        11 poll_interval_secs: u32 = Whole { default: 900, range: 1..=86_400 },
        /// How long before a pass (or a cancelled subscription) ends its member gets a direct
        /// message to renew, in hours; a failed card payment is told at once. `0`: no reminders.
        81 reminder_hours: u32 = Whole { default: 72, range: 0..=24 * 90 },
        /// How often Docobo looks for reminders to send, in seconds.
        82 reminder_check_secs: u32 = Whole { default: 300, range: 1..=86_400 },
    }

    #[derive(Debug, Clone)]
    pub struct PluginsConfig in plugins {
        /// Extra provider plugins (`*.wasm`) loaded at start, beside the built-in ones.
        12 dir: PathBuf = Text("data/plugins"),
        /// Where compiled plugins are cached (created with mode 0700).
        13 cache_dir: PathBuf = Text("data/cache"),
        /// Hosts plugins may reach with `http-fetch` (each plugin must also declare them).
        14 allowed_hosts: Vec<String> = Hosts(DEFAULT_ALLOWED_HOSTS),
        /// Allow plugins plain http to loopback (only for tests against local fakes).
        21 allow_loopback_http: bool = Flag(false),
        /// Linear memory per plugin call, in MiB.
        22 memory_limit_mb: u32 = Whole { default: 16, range: 1..=1024 },
        /// CPU time a plugin call may spend in WebAssembly, in milliseconds.
        23 cpu_deadline_ms: u32 = Whole { default: 2000, range: 10..=60_000 },
        /// Wall-clock limit of a whole plugin call (including its HTTP requests), in milliseconds.
        24 call_timeout_ms: u32 = Whole { default: 15_000, range: 100..=120_000 },
    }

    #[derive(Debug, Clone, Copy)]
    pub struct DashboardConfig in dashboard {
        /// The SHA-256 (64 hex digits) of the operator's admin token, printed by
        /// `docobo hash-token`: the operator logs in to `/dashboard` with the token and sees
        /// every server. Unset: no operator login (owners still log in through `/dashboard`
        /// in Discord).
        65 admin_token_hash: Option<[u8; 32]> = Parsed("", token_hash),
        /// How long a dashboard session lasts, in hours (a restart also ends every session).
        66 session_hours: u32 = Whole { default: 12, range: 1..=720 },
    }

    #[derive(Debug, Clone, Copy)]
    pub struct DoctorConfig in doctor {
        /// How long the role of an owner's test purchase (`/doctor` → Test purchase) stays
        /// on them before it is removed again, in minutes.
        67 test_purchase_minutes: u32 = Whole { default: 5, range: 1..=1440 },
    }

    #[derive(Debug, Clone)]
    pub struct AlertsConfig in alerts {
        /// A Discord webhook URL (Server Settings → Integrations → Webhooks → Copy Webhook
        /// URL) that gets the operator's alerts; unset: they are only logged and counted. A
        /// secret (whoever has it can post there): https, or http to loopback for tests.
        70 operator_webhook_url: Option<SecretString> = SecretUrl,
        /// After an alert is sent, repeats of the same alert to the same people within this
        /// many minutes are counted and sent as one summary when the time is up.
        71 window_minutes: u32 = Whole { default: 60, range: 1..=10_080 },
        /// Deliveries to one guild's webhook URL refused for their signature, within the
        /// window, before the guild's staff are told (a wrong secret in `/setup`).
        72 bad_signatures: u32 = Whole { default: 3, range: 1..=1_000 },
        /// Hours without a verified delivery from a provider, while it has active card
        /// subscriptions, before the operator is told its webhooks may have stopped; 0
        /// turns the check off.
        73 provider_silence_hours: u32 = Whole { default: 48, range: 0..=8_760 },
    }

    #[derive(Debug, Clone)]
    pub struct LogConfig in log {
        /// A tracing filter (`info`, `docobo=debug,info`); `RUST_LOG` wins when set.
        25 level: String = Text("info"),
        26 format: LogFormat = Parsed("auto", log_format),
    }
}

fn token_hash(text: &str) -> Result<Option<[u8; 32]>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    crate::web::auth::parse_token_hash(text)
        .map(Some)
        .ok_or_else(|| {
            "is not a token hash (64 hex digits). Fix: run `docobo hash-token` and paste the hash \
         it prints (never the token itself)"
                .to_owned()
        })
}

#[allow(clippy::unnecessary_wraps, reason = "the shape `Parsed` takes")]
fn optional_path(text: &str) -> Result<Option<PathBuf>, String> {
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

fn ip_address(text: &str) -> Result<IpAddr, String> {
    text.parse::<IpAddr>().map_err(|_| {
        "is not an IP address. Fix: use 0.0.0.0 (all interfaces) or 127.0.0.1 (this machine only)"
            .to_owned()
    })
}

fn synchronous(text: &str) -> Result<Synchronous, String> {
    match text.to_ascii_lowercase().as_str() {
        "full" => Ok(Synchronous::Full),
        "normal" => Ok(Synchronous::Normal),
        other => Err(format!(
            "{other:?} is not a durability level. Fix: use full (the default) or normal"
        )),
    }
}

fn log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "auto" => Ok(LogFormat::Auto),
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        other => Err(format!(
            "{other:?} is not a log format. Fix: use auto, json or text"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_own_rank_and_the_provider_tables_theirs() {
        let mut ranks: Vec<u8> = KEYS.iter().map(|k| k.rank).collect();
        ranks.push(PROVIDERS_RANK);
        ranks.sort_unstable();
        let before = ranks.len();
        ranks.dedup();
        assert_eq!(ranks.len(), before, "two keys share a rank: {ranks:?}");
        // 0 is taken by the file's and environment's own problems, 255 by unknown keys.
        assert!(ranks.iter().all(|r| (1..u8::MAX).contains(r)), "{ranks:?}");
    }

    #[test]
    fn env_names_and_secrets_come_from_the_table() {
        let token = KEYS
            .iter()
            .find(|k| k.id() == "discord.token")
            .expect("discord.token");
        assert_eq!(token.env_name(), "DOCOBO_DISCORD__TOKEN");
        assert!(is_secret("discord", "token"));
        assert!(is_secret("secrets", "key"));
        assert!(is_secret("server", "metrics_token"));
        assert!(is_secret("alerts", "operator_webhook_url"));
        assert!(!is_secret("server", "port"));
        assert_eq!(KEYS.iter().filter(|k| k.kind == Kind::Secret).count(), 4);
    }
}
