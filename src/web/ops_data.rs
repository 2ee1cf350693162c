//! What the dashboard's operations pages show and do, below HTTP: a guild's failed role
//! syncs (and their retry, through the role-sync worker), its newest deliveries, the loaded
//! plugins, the backups folder, and the parts of health that `/health` does not say.
//! No HTTP or template types here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension as _, params};

use crate::db::admin::ADMIN_PROVIDER;
use crate::db::{DbError, guilds};
use crate::domain::{GuildId, UnixMillis, UserId};
use crate::providers::PluginInfo;
use crate::services::Services;

/// An instant, as people read it and as `<time datetime>` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `2025-01-02 03:04:05 UTC`.
    pub text: String,
    /// RFC 3339.
    pub iso: String,
}

impl Stamp {
    #[must_use]
    pub fn at(unix_ms: UnixMillis) -> Self {
        match jiff::Timestamp::from_millisecond(unix_ms) {
            Ok(t) => Self {
                text: t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
                iso: t.to_string(),
            },
            Err(_) => Self {
                text: "unknown".to_owned(),
                iso: String::new(),
            },
        }
    }
}

/// One member × paid role whose last role sync failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSync {
    pub user_id: u64,
    /// Empty when Docobo never saw the member's name.
    pub username: String,
    /// The paid role's row id (what a retry names).
    pub paid_role: i64,
    pub role: String,
    /// The newest failure, mentions spelled out.
    pub error: String,
    pub failed_at: Stamp,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// When the worker tries again by itself (none: when something changes).
    pub next_retry: Option<Stamp>,
}

/// Failed holdings listed at most.
pub const FAILED_ROWS: usize = 200;

/// The guild's failed role syncs, the newest failure first (at most [`FAILED_ROWS`]), and
/// how many there are in all.
///
/// # Errors
/// The store cannot be read.
pub async fn failed_syncs(
    services: &Services,
    guild: GuildId,
) -> Result<(Vec<FailedSync>, usize), DbError> {
    services
        .db
        .read_slow(move |conn| {
            let total: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM subscriptions
                     WHERE guild_id = ?1 AND last_sync_error IS NOT NULL
                     GROUP BY user_id, paid_role_id)",
                )?
                .query_row([guild.as_i64()], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(
                "SELECT s.user_id, m.username, s.paid_role_id, r.name, r.role_id,
                        s.last_sync_error, s.updated_at, s.sync_attempts, s.next_sync_at
                 FROM subscriptions s
                 JOIN paid_roles r ON r.id = s.paid_role_id
                 LEFT JOIN members m ON m.guild_id = s.guild_id AND m.user_id = s.user_id
                 WHERE s.guild_id = ?1 AND s.last_sync_error IS NOT NULL
                 ORDER BY s.updated_at DESC, s.id DESC LIMIT ?2",
            )?;
            let limit = i64::try_from(FAILED_ROWS * 4).unwrap_or(i64::MAX);
            let mut rows = stmt.query(params![guild.as_i64(), limit])?;
            let mut out: Vec<FailedSync> = Vec::new();
            while let Some(row) = rows.next()? {
                let user_id = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
                let paid_role: i64 = row.get(2)?;
                let attempts: u32 = row.get(7)?;
                // A holding's subscriptions share its outcome: the newest row speaks for it.
                if let Some(seen) = out
                    .iter_mut()
                    .find(|f| f.user_id == user_id && f.paid_role == paid_role)
                {
                    seen.attempts = seen.attempts.max(attempts);
                    continue;
                }
                if out.len() == FAILED_ROWS {
                    continue;
                }
                let username = row.get::<_, Option<String>>(1)?.unwrap_or_default();
                let role_name: String = row.get(3)?;
                let role_id: i64 = row.get(4)?;
                let role = if role_name.is_empty() {
                    format!("role {role_id}")
                } else {
                    role_name
                };
                let error: String = row.get(5)?;
                let who = if username.is_empty() {
                    user_id.to_string()
                } else {
                    username.clone()
                };
                out.push(FailedSync {
                    error: error
                        .replace(&format!("<@&{role_id}>"), &format!("@{role}"))
                        .replace(&format!("<@{user_id}>"), &format!("@{who}")),
                    user_id,
                    username,
                    paid_role,
                    role,
                    failed_at: Stamp::at(row.get(6)?),
                    attempts,
                    next_retry: row.get::<_, Option<i64>>(8)?.map(Stamp::at),
                });
            }
            Ok((out, usize::try_from(total).unwrap_or(0)))
        })
        .await
}

/// What a retry came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retried {
    /// Holdings synced now.
    pub synced: usize,
    /// Holdings that failed again.
    pub failed: usize,
    /// Holdings the worker has not reached yet (they stay due).
    pub waiting: usize,
}

/// Which failed syncs to retry: one holding (member × paid role row id), or all of a guild's.
pub type RetryTarget = Option<(UserId, i64)>;

/// Failing subscription rows: row id → ((user, paid role row id), failed attempts).
type FailedRows = BTreeMap<i64, ((i64, i64), u32)>;

const FAILED_ROWS_OF: &str = "SELECT id, user_id, paid_role_id, sync_attempts FROM subscriptions
     WHERE guild_id = ?1 AND last_sync_error IS NOT NULL
       AND (?2 IS NULL OR (user_id = ?2 AND paid_role_id = ?3))";

/// Retries failed role syncs now through the role-sync worker (the same path as every
/// sync: the worker reads the holding, calls Discord, records the outcome), and waits up to
/// `wait` for its outcome. Nothing to retry: all zero.
///
/// # Errors
/// The store cannot be read or written.
pub async fn retry_syncs(
    services: &Services,
    guild: GuildId,
    target: RetryTarget,
    wait: Duration,
) -> Result<Retried, DbError> {
    let now = services.now();
    let (user, paid_role) = (target.map(|(u, _)| u.as_i64()), target.map(|(_, r)| r));
    // Each row's failed attempts before, per holding.
    let before: FailedRows = services
        .db
        .write(move |conn| {
            let rows = failed_rows(conn, guild, user, paid_role)?;
            conn.prepare_cached(
                "UPDATE subscriptions SET next_sync_at = ?4, sync_version = sync_version + 1
                 WHERE guild_id = ?1 AND last_sync_error IS NOT NULL
                   AND (?2 IS NULL OR (user_id = ?2 AND paid_role_id = ?3))",
            )?
            .execute(params![guild.as_i64(), user, paid_role, now])?;
            Ok(rows)
        })
        .await?;
    if before.is_empty() {
        return Ok(Retried::default());
    }
    services.sync.wake();
    let deadline = Instant::now() + wait;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = services
            .db
            .read_slow(move |conn| failed_rows(conn, guild, user, paid_role))
            .await?;
        let outcome = tally(&before, &after);
        if outcome.waiting == 0 || Instant::now() >= deadline {
            return Ok(outcome);
        }
    }
}

fn failed_rows(
    conn: &rusqlite::Connection,
    guild: GuildId,
    user: Option<i64>,
    paid_role: Option<i64>,
) -> Result<FailedRows, DbError> {
    let mut stmt = conn.prepare_cached(FAILED_ROWS_OF)?;
    let rows = stmt.query_map(params![guild.as_i64(), user, paid_role], |r| {
        Ok((r.get(0)?, ((r.get(1)?, r.get(2)?), r.get(3)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Per holding: synced when none of its rows is failing any more, failed when one has
/// more failed attempts than before, waiting otherwise.
fn tally(before: &FailedRows, after: &FailedRows) -> Retried {
    let mut holdings: BTreeMap<(i64, i64), (bool, bool)> = BTreeMap::new();
    for (id, (holding, attempts)) in before {
        let (failing, failed_again) = holdings.entry(*holding).or_default();
        if let Some((_, now)) = after.get(id) {
            *failing = true;
            *failed_again |= now > attempts;
        }
    }
    let mut out = Retried::default();
    for (failing, failed_again) in holdings.into_values() {
        match (failing, failed_again) {
            (false, _) => out.synced += 1,
            (true, true) => out.failed += 1,
            (true, false) => out.waiting += 1,
        }
    }
    out
}

/// One delivery on the deliveries page: never its body, nor anything personal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub provider: String,
    pub event_type: String,
    /// `applied`, `stale`, `ignored`, `refused`, `rejected`.
    pub outcome: String,
    pub received: Stamp,
    /// From a provider's test mode or an owner's test purchase.
    pub test: bool,
}

/// A page of deliveries, newest first, and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPage {
    pub rows: Vec<Delivery>,
    pub next: Option<i64>,
}

/// Deliveries per page.
pub const DELIVERY_ROWS: usize = 50;

/// The guild's deliveries (by the guild's column, or verified with its credentials; the
/// admin audit rows left out), newest first, keyset-paged on the row id: only rows older
/// than `before`.
///
/// # Errors
/// The store cannot be read.
pub async fn deliveries(
    services: &Services,
    guild: GuildId,
    before: Option<i64>,
) -> Result<DeliveryPage, DbError> {
    services
        .db
        .read_slow(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, provider, event_type, outcome, received_at, test FROM webhook_events
                 WHERE (guild_id = ?1 OR scope = ?2) AND provider <> ?3
                   AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let limit = i64::try_from(DELIVERY_ROWS + 1).unwrap_or(i64::MAX);
            let rows = stmt.query_map(
                params![
                    guild.as_i64(),
                    guild.to_string(),
                    ADMIN_PROVIDER,
                    before,
                    limit
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Delivery {
                            provider: r.get(1)?,
                            event_type: r.get(2)?,
                            outcome: r.get(3)?,
                            received: Stamp::at(r.get(4)?),
                            test: r.get(5)?,
                        },
                    ))
                },
            )?;
            let mut rows: Vec<(i64, Delivery)> = rows.collect::<Result<_, _>>()?;
            let next = if rows.len() > DELIVERY_ROWS {
                rows.truncate(DELIVERY_ROWS);
                rows.last().map(|(id, _)| *id)
            } else {
                None
            };
            Ok(DeliveryPage {
                rows: rows.into_iter().map(|(_, d)| d).collect(),
                next,
            })
        })
        .await
}

/// The newest delivery of `guild`, or of every guild for `None` (admin audit rows left out).
///
/// # Errors
/// The store cannot be read.
pub async fn last_delivery(
    services: &Services,
    guild: Option<GuildId>,
) -> Result<Option<Delivery>, DbError> {
    services
        .db
        .read_slow(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT provider, event_type, outcome, received_at, test FROM webhook_events
                     WHERE provider <> ?3 AND (?1 IS NULL OR guild_id = ?1 OR scope = ?2)
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(
                    params![
                        guild.map(GuildId::as_i64),
                        guild.map(|g| g.to_string()),
                        ADMIN_PROVIDER
                    ],
                    |r| {
                        Ok(Delivery {
                            provider: r.get(0)?,
                            event_type: r.get(1)?,
                            outcome: r.get(2)?,
                            received: Stamp::at(r.get(3)?),
                            test: r.get(4)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
}

/// A loaded plugin, as the plugins page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLine {
    pub id: String,
    pub name: String,
    pub version: String,
    /// The WIT API version it was built against.
    pub api_version: String,
    /// `any`, or the codes it takes.
    pub currencies: String,
    /// The optional calls it offers, or `none`.
    pub calls: String,
    /// `built-in`, or its file.
    pub source: String,
    /// Webhook deliveries to it since this process started, whatever their outcome.
    pub deliveries: u64,
    /// Deliveries to it that failed since the start (the plugin crashed or timed out, the
    /// database or the credentials failed): answered 500, so the provider retries them.
    pub failed_deliveries: u64,
}

/// The plugins page: the guild's provider, every loaded plugin, the files that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugins {
    /// The guild's provider id, when it has chosen one.
    pub provider: Option<String>,
    /// Its plugin, when loaded (a provider whose plugin file was removed is not).
    pub own: Option<PluginLine>,
    pub others: Vec<PluginLine>,
    /// `(file, why)`.
    pub failures: Vec<(String, String)>,
}

/// Every outcome a delivery is counted under ([`crate::metrics::WebhookLabels`]).
const DELIVERY_OUTCOMES: &[&str] = &[
    "applied",
    "duplicate",
    "ignored",
    "stale",
    "refused",
    "rejected",
    "test",
    "bad_signature",
    "malformed",
    "error",
    "too_large",
    "bad_request",
    "slow_body",
    "throttled",
    "unknown_key",
];

fn plugin_line(services: &Services, p: &PluginInfo) -> PluginLine {
    let id = p.id.to_string();
    let metrics = &services.metrics;
    let count = |outcome: &str| {
        metrics
            .webhooks
            .get(&crate::metrics::WebhookLabels {
                provider: id.clone(),
                outcome: outcome.to_owned(),
            })
            .map_or(0, |c| c.get())
    };
    let deliveries = DELIVERY_OUTCOMES.iter().map(|o| count(o)).sum();
    let failed_deliveries = count("error");
    let calls = p.capabilities.names();
    let mut offered: Vec<&str> = Vec::new();
    if p.supports_poll {
        offered.push("poll");
    }
    offered.extend(calls);
    PluginLine {
        name: p.name.clone(),
        version: p.version.clone(),
        api_version: p.api_version.clone(),
        currencies: if p.currencies.is_empty() {
            "any".to_owned()
        } else {
            p.currencies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
        calls: if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(", ")
        },
        source: p.source.to_string(),
        deliveries,
        failed_deliveries,
        id,
    }
}

/// The plugins page of `guild`.
///
/// # Errors
/// The store cannot be read.
pub async fn plugins(services: &Services, guild: GuildId) -> Result<Plugins, DbError> {
    let provider = services
        .db
        .read_slow(move |conn| {
            Ok(guilds::get(conn, guild)?
                .and_then(|g| g.provider)
                .map(|p| p.as_str().to_owned()))
        })
        .await?;
    let host = &services.providers;
    let own = provider
        .as_deref()
        .and_then(|id| host.plugin(id))
        .map(|p| plugin_line(services, p));
    let others = host
        .plugins()
        .filter(|p| Some(p.id.as_str()) != provider.as_deref())
        .map(|p| plugin_line(services, p))
        .collect();
    let failures = host
        .failures()
        .iter()
        .map(|f| (f.source.to_string(), f.error.clone()))
        .collect();
    Ok(Plugins {
        provider,
        own,
        others,
        failures,
    })
}

/// Whether `name` may be a backup's file name: 1 to 128 ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit, without `..`, and not an unfinished copy
/// (`.partial`). Anything else (a path, a hidden file, an encoded slash) is refused.
#[must_use]
pub fn valid_backup_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..")
        && !name.ends_with(".partial")
}

/// A backup in the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    pub name: String,
    /// `12.3 MB`.
    pub size: String,
    pub taken: Stamp,
}

/// The backups in `dir`, newest first (none when the folder does not exist yet). Only
/// regular files with a [`valid_backup_name`] are listed.
///
/// # Errors
/// The folder cannot be read.
pub async fn list_backups(dir: PathBuf) -> std::io::Result<Vec<BackupFile>> {
    tokio::task::spawn_blocking(move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // `DirEntry::metadata` does not follow symbolic links.
            let meta = entry.metadata()?;
            if !valid_backup_name(&name) || !meta.file_type().is_file() {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            out.push((modified, name, meta.len()));
        }
        out.sort_by(|a, b| b.cmp(a));
        Ok(out
            .into_iter()
            .map(|(modified, name, bytes)| BackupFile {
                name,
                size: size_text(bytes),
                taken: Stamp::at(modified),
            })
            .collect())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `bytes` for people.
#[must_use]
pub fn size_text(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "a size for people")]
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GB", b / f64::from(1u32 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MB", b / f64::from(1u32 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KB", b / f64::from(1u32 << 10))
    } else {
        format!("{bytes} B")
    }
}

/// Takes a backup now into `dir` (created, owner-only, if missing), named
/// `docobo-YYYYMMDD-HHMMSS.db` from `now` (`-2`, `-3`, … when taken within the same second).
/// Returns its name.
///
/// # Errors
/// The folder cannot be made, or the copy fails: the message says why and what to do.
pub async fn take_backup(services: &Services, dir: PathBuf) -> Result<String, String> {
    let stamp = jiff::Timestamp::from_millisecond(services.now())
        .map(|t| t.strftime("%Y%m%d-%H%M%S").to_string())
        .map_err(|e| format!("the clock is out of range: {e}"))?;
    let (dest, name) = tokio::task::spawn_blocking(move || free_name(&dir, &stamp))
        .await
        .map_err(|e| e.to_string())??;
    services
        .db
        .backup(dest.clone())
        .await
        .map_err(|e| e.to_string())?;
    restrict(&dest, 0o600);
    Ok(name)
}

/// Makes the folder and picks the first unused name.
fn free_name(dir: &Path, stamp: &str) -> Result<(PathBuf, String), String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the backup folder {}: {e}. Fix: check that the database's folder is writable",
            dir.display()
        )
    })?;
    restrict(dir, 0o700);
    for n in 1..1000 {
        let name = if n == 1 {
            format!("docobo-{stamp}.db")
        } else {
            format!("docobo-{stamp}-{n}.db")
        };
        let path = dir.join(&name);
        if !path.exists() {
            return Ok((path, name));
        }
    }
    Err(format!(
        "{} has too many backups from this second. Fix: try again in a moment",
        dir.display()
    ))
}

/// Backups hold every guild's data: only the owner of the process may read them.
fn restrict(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the backup owner-only");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The file of backup `name` in `dir`, if the name is valid and it is a regular file there
/// (not a link, not a folder).
pub async fn backup_file(dir: &Path, name: &str) -> Option<PathBuf> {
    if !valid_backup_name(name) {
        return None;
    }
    let path = dir.join(name);
    tokio::task::spawn_blocking(move || {
        std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|_| path)
    })
    .await
    .ok()
    .flatten()
}

/// What the health page adds to `/health`'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// How long an empty write waited in the writer's queue and committed, or why it failed.
    pub writer: Result<String, String>,
    /// While nothing can be written (a full disk, a read-only file system): why, and the fix.
    pub unwritable: Option<(String, String)>,
    /// The database file and its write-ahead log.
    pub database_size: String,
    pub database_path: String,
}

/// Measures the writer queue and reads the database's size.
pub async fn storage(services: &Services) -> Storage {
    let started = Instant::now();
    let writer = match services.db.write(|_| Ok(())).await {
        Ok(()) => Ok(format!(
            "{:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        )),
        Err(e) => Err(e.to_string()),
    };
    let path = services.db.path().to_path_buf();
    let shown = path.display().to_string();
    let bytes = tokio::task::spawn_blocking(move || {
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        [path, PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>()
    })
    .await
    .unwrap_or(0);
    Storage {
        writer,
        unwritable: services
            .db
            .unwritable()
            .map(|(why, fix)| (why, fix.to_owned())),
        database_size: size_text(bytes),
        database_path: shown,
    }
}

/// `seconds` for people: `3 d 4 h`, `5 h 6 min`, `7 min`.
#[must_use]
pub fn duration_text(seconds: u64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_are_plain_file_names_only() {
        for good in [
            "docobo-20250102-030405.db",
            "a",
            "my_backup.sqlite",
            "x-2.db",
        ] {
            assert!(valid_backup_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../docobo.db",
            "a/b",
            "a\\b",
            ".hidden",
            "-rf",
            "a..b",
            "name.db.partial",
            "naïve.db",
            "a b",
            "a%2fb",
            &"a".repeat(129),
        ] {
            assert!(!valid_backup_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_retry_counts_each_holding_once() {
        let before = BTreeMap::from([
            (1, ((10, 1), 2)),
            (2, ((10, 1), 1)),
            (3, ((11, 1), 1)),
            (4, ((12, 1), 3)),
        ]);
        // Holding (10, 1): one row cleared, one failing with the same attempts: waiting.
        // (11, 1) cleared: synced. (12, 1) one more attempt: failed.
        let after = BTreeMap::from([(2, ((10, 1), 1)), (4, ((12, 1), 4))]);
        assert_eq!(
            tally(&before, &after),
            Retried {
                synced: 1,
                failed: 1,
                waiting: 1
            }
        );
        assert_eq!(tally(&before, &BTreeMap::new()).synced, 3);
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(size_text(900), "900 B");
        assert_eq!(size_text(1536), "1.5 KB");
        assert_eq!(size_text(5 << 20), "5.0 MB");
        assert_eq!(duration_text(59), "0 min");
        assert_eq!(duration_text(3_700), "1 h 1 min");
        assert_eq!(duration_text(2 * 86_400 + 3 * 3600), "2 d 3 h");
        assert_eq!(Stamp::at(0).text, "1970-01-01 00:00:00 UTC");
    }
}
