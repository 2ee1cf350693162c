//! Consistent copies of a live database with `VACUUM INTO`.
//!
//! `VACUUM INTO` runs as one read transaction on its own connection, so under WAL it sees a
//! single committed snapshot while writers carry on. The copy is written next to the target
//! and renamed into place, so a crash never leaves a half-written backup under the real name.

use std::path::Path;
use std::time::Duration;

use super::{DbError, open_connection};

/// Copies the database at `source` to `dest`, which must not exist.
///
/// # Errors
/// `dest` exists or its folder is not writable, or SQLite fails.
pub fn backup_to(source: &Path, dest: &Path, busy_timeout: Duration) -> Result<(), DbError> {
    if dest.exists() {
        return Err(DbError::Backup(format!(
            "{} already exists. Fix: choose a new file name, or remove the old backup first",
            dest.display()
        )));
    }
    if !source.exists() {
        return Err(DbError::Backup(format!(
            "there is no database at {}. Fix: check database.path (or --config)",
            source.display()
        )));
    }
    let file_name = dest
        .file_name()
        .ok_or_else(|| DbError::Backup(format!("{} is not a file name", dest.display())))?;
    let mut partial_name = file_name.to_owned();
    partial_name.push(".partial");
    let partial = dest.with_file_name(partial_name);
    // A leftover from an earlier crash.
    let _ = std::fs::remove_file(&partial);

    let conn = open_connection(source, busy_timeout)?;
    let partial_text = partial
        .to_str()
        .ok_or_else(|| DbError::Backup(format!("{} is not a UTF-8 path", partial.display())))?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [partial_text]) {
        let _ = std::fs::remove_file(&partial);
        return Err(DbError::Backup(format!(
            "cannot write {}: {e}. Fix: check that the folder exists and is writable",
            dest.display()
        )));
    }
    std::fs::rename(&partial, dest).map_err(|e| {
        DbError::Backup(format!(
            "cannot move the backup into {}: {e}",
            dest.display()
        ))
    })?;
    Ok(())
}
