//! `docobo restore BACKUP`: put a backup in the database's place, keeping the old one.
//!
//! In order, each step refusing before anything is changed:
//! 1. BACKUP is a file, not the database itself, and has no `-wal` beside it (a file with one
//!    is a live database, whose last writes are in that `-wal`, not a backup).
//! 2. No server runs on the database: restore takes the server lock ([`ServerLock`]) and
//!    keeps it to the end, so `docobo serve` cannot start half-way either.
//! 3. BACKUP is copied to a temporary file in the database's folder and fsynced; that copy
//!    (exactly what will be put in place) passes `PRAGMA integrity_check`, is a Docobo
//!    database, and holds no migration this binary does not know (a backup from a newer
//!    Docobo is refused; an older one is fine: `serve` migrates it at start).
//! 4. The copy gets the owner of the database it replaces (or of its folder), so a restore
//!    run as root leaves files the service's user can open.
//! 5. The old database is moved aside, never deleted, and whole: its WAL is checkpointed
//!    into it first, and its `-wal`/`-shm` (if the checkpoint could not finish, e.g. it is
//!    damaged) move with it under the same new name, so SQLite opening the aside file still
//!    sees every write. Litestream's state for it (`.NAME-litestream`) moves aside too: it
//!    describes the old database, and Litestream's docs say to remove it when the database
//!    is replaced.
//! 6. The copy is renamed into place (atomic within the folder) and the folder fsynced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{DbError, ServerLock};

/// What `restore` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The database that now holds the backup's contents.
    pub database: PathBuf,
    /// The newest migration in the backup, e.g. `V5__failed_sync_index`.
    pub backup_level: String,
    /// Migrations this binary has that the backup lacks: `serve` applies them at start.
    pub pending: Vec<String>,
    /// Where the old database went, if there was one.
    pub aside: Option<PathBuf>,
    /// Whether the aside file is whole on its own (its WAL was checkpointed into it);
    /// `false` when its `-wal` had to move along beside it.
    pub aside_whole: bool,
    /// Where Litestream's state for the old database went, if there was any.
    pub litestream_aside: Option<PathBuf>,
}

fn refuse(message: impl Into<String>) -> DbError {
    DbError::Restore(message.into())
}

/// `path` with `suffix` appended to its file name (`docobo.db` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces the database at `database` with the backup at `backup` (see the module docs).
///
/// # Errors
/// [`DbError::Restore`] (or [`DbError::InUse`]) with the reason and the fix; nothing was
/// changed unless the message says so.
pub fn restore_from(
    database: &Path,
    backup: &Path,
    busy_timeout: Duration,
) -> Result<RestoreReport, DbError> {
    if !backup.is_file() {
        return Err(refuse(format!(
            "there is no backup file at {}. Fix: give the path of a file written by `docobo backup` (under systemd they are in /var/lib/docobo/backups/)",
            backup.display()
        )));
    }
    if database.exists() && same_file(database, backup) {
        return Err(refuse(format!(
            "{} is the database itself. Fix: give the path of a backup written by `docobo backup`",
            backup.display()
        )));
    }
    if with_suffix(backup, "-wal").exists() {
        return Err(refuse(format!(
            "{} has a -wal file beside it: it is a live database, not a backup, and a copy of it alone would miss its last writes. Fix: stop whatever uses it, or take a copy with `docobo backup`",
            backup.display()
        )));
    }
    let file_name = database
        .file_name()
        .ok_or_else(|| refuse(format!("{} is not a file name", database.display())))?
        .to_owned();
    let dir = match database.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let lock = ServerLock::acquire(database, "restore")?;
    // Best effort: the lock file restore may just have created (as root) must stay openable
    // by the service's user.
    let _ = match_owner(lock.path(), &dir);

    let partial = dir.join(format!(".{}.restoring", file_name.to_string_lossy()));
    remove_partial(&partial);
    let checked = copy_and_check(backup, &partial, busy_timeout).and_then(|levels| {
        let like = if database.exists() { database } else { &dir };
        match_owner(&partial, like).map_err(|e| {
            refuse(format!(
                "cannot give the restored file the owner of {}: {e}. Fix: run restore as that user, or as root",
                like.display()
            ))
        })?;
        Ok(levels)
    });
    let (backup_level, pending) = match checked {
        Ok(levels) => levels,
        Err(e) => {
            remove_partial(&partial);
            return Err(e);
        }
    };

    let (aside, aside_whole, litestream_aside) = if database.exists() {
        match move_aside(database, &dir, &file_name, busy_timeout) {
            Ok(moved) => moved,
            Err(e) => {
                remove_partial(&partial);
                return Err(e);
            }
        }
    } else {
        (None, true, None)
    };
    if let Err(e) = std::fs::rename(&partial, database) {
        let undo = aside
            .as_ref()
            .map_or(Ok(()), |aside| std::fs::rename(aside, database));
        return Err(refuse(format!(
            "cannot put the backup in place at {}: {e}. {}",
            database.display(),
            match (&aside, undo) {
                (Some(_), Ok(())) => "The old database was moved back; nothing changed.".into(),
                (Some(aside), Err(u)) => format!(
                    "The old database is at {} and could not be moved back ({u}): rename it to {} by hand",
                    aside.display(),
                    database.display()
                ),
                (None, _) => "Nothing changed.".into(),
            }
        )));
    }
    sync_dir(&dir);
    drop(lock);
    Ok(RestoreReport {
        database: database.to_owned(),
        backup_level,
        pending,
        aside,
        aside_whole,
        litestream_aside,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Removes a temporary copy (and the journal files SQLite may have left beside it).
fn remove_partial(partial: &Path) {
    for path in [
        partial.to_owned(),
        with_suffix(partial, "-wal"),
        with_suffix(partial, "-shm"),
        with_suffix(partial, "-journal"),
    ] {
        let _ = std::fs::remove_file(path);
    }
}

/// Copies `backup` to `partial`, fsyncs it and checks the copy; returns the backup's
/// newest migration and the migrations it lacks.
fn copy_and_check(
    backup: &Path,
    partial: &Path,
    busy_timeout: Duration,
) -> Result<(String, Vec<String>), DbError> {
    std::fs::copy(backup, partial).map_err(|e| {
        refuse(format!(
            "cannot copy {} to {}: {e}. Fix: check that the backup is readable and the database folder writable, with room for a copy",
            backup.display(),
            partial.display()
        ))
    })?;
    set_private(partial);
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| refuse(format!("cannot fsync {}: {e}", partial.display())))?;
    let damaged = |e: &dyn std::fmt::Display| {
        refuse(format!(
            "{} is not a readable SQLite database ({e}). Fix: pick another backup; this one is damaged or is not a database",
            backup.display()
        ))
    };
    let conn = Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| damaged(&e))?;
    conn.busy_timeout(busy_timeout).map_err(|e| damaged(&e))?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(5)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect()
        })
        .map_err(|e| damaged(&e))?;
    if problems != ["ok"] {
        return Err(refuse(format!(
            "{} fails SQLite's integrity check: {}. Fix: pick another backup (an older one), and keep this one for diagnosis",
            backup.display(),
            problems.join("; ")
        )));
    }
    let levels = migration_levels(&conn, backup)?;
    drop(conn);
    Ok(levels)
}

/// The backup's newest migration and the ones it lacks, refusing migrations this binary
/// does not know (a newer Docobo's) or knows differently.
fn migration_levels(conn: &Connection, backup: &Path) -> Result<(String, Vec<String>), DbError> {
    let has_history: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| refuse(format!("cannot read {}: {e}", backup.display())))?;
    if !has_history {
        return Err(refuse(format!(
            "{} is a SQLite database but not Docobo's (it has no migration history). Fix: give a file written by `docobo backup`",
            backup.display()
        )));
    }
    let applied: Vec<(i64, String, String)> = conn
        .prepare("SELECT version, name, checksum FROM refinery_schema_history ORDER BY version")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .map_err(|e| {
            refuse(format!(
                "cannot read the migration history of {}: {e}",
                backup.display()
            ))
        })?;
    let runner = super::embedded::migrations::runner();
    let known = runner.get_migrations();
    let label = |version: i64, name: &str| format!("V{version}__{name}");
    for (version, name, checksum) in &applied {
        match known.iter().find(|m| i64::from(m.version()) == *version) {
            None => {
                return Err(refuse(format!(
                    "{} was written by a newer Docobo: it has migration {}, which this binary (docobo {}) does not know. Fix: restore it with that newer Docobo (upgrade first), or pick a backup taken before the upgrade",
                    backup.display(),
                    label(*version, name),
                    env!("CARGO_PKG_VERSION")
                )));
            }
            Some(m) if m.checksum().to_string() != *checksum => {
                return Err(refuse(format!(
                    "{}'s migration {} differs from this binary's {}: it was written by a different build of Docobo. Fix: restore it with the Docobo that wrote it",
                    backup.display(),
                    label(*version, name),
                    label(i64::from(m.version()), m.name())
                )));
            }
            Some(_) => {}
        }
    }
    let Some((version, name, _)) = applied.last() else {
        return Err(refuse(format!(
            "{} has an empty migration history. Fix: give a file written by `docobo backup`",
            backup.display()
        )));
    };
    let pending = known
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == i64::from(m.version())))
        .map(|m| label(i64::from(m.version()), m.name()))
        .collect();
    Ok((label(*version, name), pending))
}

/// Moves the database (made whole first), its journal files and Litestream's state for it
/// aside; returns where it went, whether it is whole on its own, and where Litestream's
/// state went.
fn move_aside(
    database: &Path,
    dir: &Path,
    file_name: &std::ffi::OsStr,
    busy_timeout: Duration,
) -> Result<(Option<PathBuf>, bool, Option<PathBuf>), DbError> {
    // No server runs (we hold the lock), so a TRUNCATE checkpoint copies the whole WAL into
    // the file and empties it. It fails on a damaged database: then the -wal moves along.
    let whole = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .and_then(|conn| {
            conn.busy_timeout(busy_timeout)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .is_ok_and(|busy| busy == 0);
    let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
    let name = file_name.to_string_lossy();
    let mut aside = dir.join(format!("{name}.before-restore-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = dir.join(format!("{name}.before-restore-{stamp}-{n}"));
    }
    let moving = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            refuse(format!(
                "cannot move {} aside to {}: {e}. Fix: check that the database folder is writable by this user",
                from.display(),
                to.display()
            ))
        })
    };
    moving(database, &aside)?;
    let mut wal_moved = false;
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(database, suffix);
        if from.exists() {
            moving(&from, &with_suffix(&aside, suffix))?;
            wal_moved |= suffix == "-wal";
        }
    }
    let litestream = dir.join(format!(".{name}-litestream"));
    let litestream_aside = if litestream.exists() {
        let to = dir.join(format!(
            ".{}-litestream",
            aside
                .file_name()
                .map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned())
        ));
        moving(&litestream, &to)?;
        Some(to)
    } else {
        None
    };
    Ok((Some(aside), whole || !wal_moved, litestream_aside))
}

/// Mode 0600, as the database Docobo creates under its umask.
fn set_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Gives `path` the owner and group of `like` (a no-op when they already match).
fn match_owner(path: &Path, like: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let want = std::fs::metadata(like)?;
        let have = std::fs::metadata(path)?;
        if (have.uid(), have.gid()) != (want.uid(), want.gid()) {
            std::os::unix::fs::chown(path, Some(want.uid()), Some(want.gid()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, like);
    Ok(())
}

/// Makes the renames in `dir` durable (best effort: not every filesystem can fsync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
