//! "A server runs on this database": an exclusive advisory lock on a file beside it.
//!
//! `docobo serve` takes the lock before it opens the database and keeps it until it exits;
//! `docobo restore` takes it too, for as long as it works, so that neither starts while the
//! other runs. The lock is `flock(2)` on `<database>.lock` (std's [`File::try_lock`]): the
//! kernel drops it when the process ends, however it ends (a SIGKILL or a power cut leaves no
//! stale lock to clean up, which a pid file would), and it is a separate file so that it
//! survives `restore` renaming the database. Like SQLite's own locks it needs a local disk,
//! which the README already asks for. The file is empty and may be left in place.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::DbError;

/// Held while this process serves (or restores) the database; dropping it releases the lock.
#[derive(Debug)]
pub struct ServerLock {
    /// The lock lives as long as this open file.
    _file: File,
    path: PathBuf,
}

/// `<database>.lock`, beside the database.
#[must_use]
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl ServerLock {
    /// Takes the lock for `database` without waiting; `doing` names what this process is
    /// about to do, for the error message.
    ///
    /// # Errors
    /// [`DbError::InUse`] when another process holds it (a server runs on the database), or
    /// the lock file cannot be created.
    pub fn acquire(database: &Path, doing: &str) -> Result<Self, DbError> {
        if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let path = lock_path(database);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            // A lock file another user made (a restore run as root) may be read-only to this
            // one; flock needs only an open file.
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => File::open(&path),
                _ => Err(e),
            })
            .map_err(|e| DbError::Lock {
                path: path.clone(),
                message: e.to_string(),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(DbError::InUse {
                database: database.to_owned(),
                lock: path,
                doing: doing.to_owned(),
            }),
            Err(TryLockError::Error(e)) => Err(DbError::Lock {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("data/docobo.db");
        let first = ServerLock::acquire(&db, "serve").expect("first");
        assert_eq!(first.path(), dir.path().join("data/docobo.db.lock"));
        let second = ServerLock::acquire(&db, "restore").expect_err("held");
        let text = second.to_string();
        assert!(matches!(second, DbError::InUse { .. }), "{text}");
        assert!(text.contains("Fix: stop"), "{text}");
        drop(first);
        ServerLock::acquire(&db, "restore").expect("free again");
    }
}
