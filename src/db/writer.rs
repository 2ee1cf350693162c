//! Group commit: concurrent writes share one transaction.
//!
//! Each webhook delivery is a small write transaction, and what a commit costs (writing the
//! touched pages to the WAL) is mostly the same for one delivery or twenty. The writer thread
//! takes every write waiting in its queue, runs each in its own SAVEPOINT inside one
//! transaction (so one failing write rolls back alone), commits once, and only then answers
//! each caller: nobody hears "done" before their data is durable.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::DbError;

/// The most writes committed together.
const MAX_BATCH: usize = 64;

/// What a job tells the writer after running: keep its savepoint or not, and how to answer
/// its caller once the commit's outcome is known.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// Runs a write; says whether to keep its savepoint, and how to answer its caller.
type Run = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;

/// One queued write.
pub(super) struct Job(Run);

/// Queues `work` and builds the receiver of its result.
pub(super) fn job<T, F>(work: F) -> (Job, oneshot::Receiver<Result<T, DbError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
{
    let (reply, receive) = oneshot::channel();
    let run = move |conn: &Connection| -> (bool, Finish) {
        match work(conn) {
            Ok(value) => (
                true,
                Box::new(move |commit_error: Option<&str>| {
                    let _ = reply.send(match commit_error {
                        None => Ok(value),
                        Some(e) => Err(DbError::Commit(e.to_owned())),
                    });
                }),
            ),
            Err(e) => (
                false,
                Box::new(move |_: Option<&str>| {
                    let _ = reply.send(Err(e));
                }),
            ),
        }
    };
    (Job(Box::new(run)), receive)
}

/// Whether the database could be written the last time it was tried, shared by the writer
/// (every batch's commit), the checkpointer (every checkpoint) and [`super::Db::writable`].
///
/// A disk that fills up or a file system that turns read-only (an SD card failing) makes every
/// commit fail; this is where that is noticed once, logged once, and reported by `/health`
/// until a write succeeds again.
#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    state: Mutex<WriteState>,
}

#[derive(Debug, Default)]
struct WriteState {
    /// When a write last succeeded (a commit), by the monotonic clock.
    last_ok: Option<Instant>,
    /// When a write last failed (a commit or a checkpoint), and why.
    last_error: Option<(Instant, String)>,
    /// Between the first failure and a success [`RECOVERED_AFTER`] after the last one: a
    /// nearly full disk fails some writes and not others, and is not healthy meanwhile.
    failing: bool,
    /// What to do about the last failure (see [`unwritable_fix`]).
    last_fix: &'static str,
}

/// How long writes must succeed, after the last failure, for the database to count as
/// writable again.
const RECOVERED_AFTER: Duration = Duration::from_secs(5);

impl WriteHealth {
    /// Records the outcome of a write; logs when the database stops or starts being
    /// writable (once each way, not once per failed write).
    pub(super) fn record(&self, outcome: Result<(), &rusqlite::Error>, path: &Path) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match outcome {
            Ok(()) => {
                state.last_ok = Some(now);
                let quiet = state
                    .last_error
                    .as_ref()
                    .is_none_or(|(at, _)| at.elapsed() >= RECOVERED_AFTER);
                if state.failing && quiet {
                    state.failing = false;
                    tracing::warn!(path = %path.display(), "the database can be written again; webhooks are accepted again");
                }
            }
            Err(e) => {
                let reason = unwritable_reason(e);
                if !state.failing {
                    state.failing = true;
                    tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "the database cannot be written: {reason}. Webhooks get 500 (providers retry them) until it can. Fix: {}",
                        unwritable_fix(e)
                    );
                }
                state.last_error = Some((now, reason));
                state.last_fix = unwritable_fix(e);
            }
        }
    }

    /// What is known without trying a write: `Some(Ok)` after a success within `within`
    /// while not failing, `Some(Err(why))` while failing with a failure within `within`,
    /// `None` when only a new write can tell.
    pub(super) fn recent(&self, within: Duration) -> Option<Result<(), String>> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.failing {
            let (at, why) = state.last_error.as_ref()?;
            (at.elapsed() <= within).then(|| Err(why.clone()))
        } else {
            let at = state.last_ok?;
            (at.elapsed() <= within).then_some(Ok(()))
        }
    }

    /// While writes are failing: why, and what to do.
    pub(super) fn failure(&self) -> Option<(String, &'static str)> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.failing {
            return None;
        }
        let (_, why) = state.last_error.as_ref()?;
        Some((why.clone(), state.last_fix))
    }

    /// Whether writes are failing (see [`WriteState::failing`]).
    pub(super) fn failing(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failing
    }
}

/// What a failed write says about the disk, in words.
pub(super) fn unwritable_reason(error: &rusqlite::Error) -> String {
    use rusqlite::ffi::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "the disk is full".into(),
        Some(ErrorCode::ReadOnly) => "the database file or its file system is read-only".into(),
        Some(ErrorCode::SystemIoFailure) => {
            "a disk I/O error (a read-only or failing file system?)".into()
        }
        Some(ErrorCode::CannotOpen) => "its files cannot be opened".into(),
        _ => error.to_string(),
    }
}

fn unwritable_fix(error: &rusqlite::Error) -> &'static str {
    use rusqlite::ffi::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            "free space on the disk that holds the database (`df -h`); Docobo resumes by itself"
        }
        _ => {
            "check the disk (`dmesg` shows why a file system turned read-only: often a failing SD card), free it or move the database, then restart Docobo if it does not resume by itself"
        }
    }
}

/// Whether a checkpoint's error says something about the disk (not a lock held a moment).
pub(super) fn is_disk_error(error: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode;
    !matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Set by the checkpointer when the WAL has grown past [`WAL_LIMIT_FRAMES`] because writes
/// never paused long enough for it to catch up; the writer then finishes the checkpoint
/// itself between two batches.
pub(super) type WalTooLong = Arc<AtomicBool>;

/// Starts the writer thread; it stops when every sender is dropped.
pub(super) fn start(
    conn: Arc<Mutex<Connection>>,
    wal_too_long: WalTooLong,
    health: Arc<WriteHealth>,
    path: PathBuf,
) -> std::io::Result<mpsc::UnboundedSender<Job>> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<Job>();
    std::thread::Builder::new()
        .name("docobo-db-writer".into())
        .spawn(move || {
            while let Some(first) = receiver.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                run_batch(&mut conn, batch, &health, &path);
                if wal_too_long.swap(false, Ordering::Relaxed) {
                    // No write can land while this runs, so the checkpoint completes and
                    // the next write starts the WAL over. It copies only what arrived since
                    // the checkpointer's last round; the writes queued meanwhile wait.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint by the writer failed");
                    }
                }
            }
        })?;
    Ok(sender)
}

/// Runs a batch in one transaction. A job whose savepoint cannot be set up, or that panics,
/// is dropped, which answers its caller with an error.
fn run_batch(conn: &mut Connection, batch: Vec<Job>, health: &WriteHealth, path: &Path) {
    let mut tx = match super::write_transaction(conn) {
        Ok(tx) => tx,
        Err(e) => {
            // Dropping the batch answers every caller with an error; they retry.
            if !health.failing() {
                tracing::error!(error = %e, writes = batch.len(), "cannot start a write transaction");
            }
            health.record(Err(&e), path);
            return;
        }
    };
    let mut finishers = Vec::with_capacity(batch.len());
    for Job(run) in batch {
        let Ok(savepoint) = tx.savepoint() else {
            continue;
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| run(&savepoint))) {
            Ok((true, finish)) => {
                if savepoint.commit().is_ok() {
                    finishers.push(finish);
                }
            }
            Ok((false, finish)) => {
                drop(savepoint); // rolls back this job only
                finish(None);
            }
            Err(_) => {
                tracing::error!("a database write panicked; it was rolled back");
                drop(savepoint);
            }
        }
    }
    let committed = tx.commit();
    let error = committed.as_ref().err().map(ToString::to_string);
    if let Some(e) = &error {
        // Once per outage at error level (by `health`), then quietly: a full disk fails
        // every batch.
        if health.failing() {
            tracing::debug!(error = %e, writes = finishers.len(), "commit failed; the writes are rolled back");
        } else {
            tracing::error!(error = %e, writes = finishers.len(), "commit failed; the writes are rolled back");
        }
    }
    health.record(committed.as_ref().copied(), path);
    for finish in finishers {
        finish(error.as_deref());
    }
}

/// How often the checkpointer copies the WAL into the database file. Often, so that each
/// checkpoint is small: its fsync then takes a millisecond or two instead of tens.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// PASSIVE checkpoints run back to back, at most this many times, to catch up with writes
/// made during the previous one.
const CATCH_UP_ROUNDS: usize = 8;

/// A WAL longer than this (64 MiB of 4 KiB pages) is finished by the writer itself (see
/// [`WalTooLong`]): only under sustained overload do the checkpointer's rounds never find a
/// moment with no write in between. (A RESTART checkpoint from this thread would do the
/// same, but the writer would wait for its lock in SQLite's busy-handler sleeps, which grow
/// to 100 ms each: with it, the benchmark's 500 req/s phase after saturation had 200–400 ms
/// stalls.)
pub(super) const WAL_LIMIT_FRAMES: i64 = 16_384;

/// Starts the thread that checkpoints the WAL on its own connection, so that the writer's
/// commits never wait for a checkpoint's fsync.
///
/// The aim is a WAL that is checkpointed to its end often enough that SQLite starts it again
/// from the beginning (it does so at the first write after a complete checkpoint). A WAL
/// that is never complete grows without bound, and every write then extends the file;
/// measured on ext4, appending writes stalled for 10–40 ms whenever a checkpoint fsynced,
/// while writes over a reused WAL did not stall at all. A PASSIVE checkpoint never blocks
/// the writer (it copies what no reader still needs); run every 100 ms and repeated to catch
/// up, it completes between two writes even at hundreds of writes a second.
///
/// The thread ends, after a last checkpoint, once every [`super::Db`] handle is dropped
/// (`alive` is the handle's path).
///
/// **With Litestream** (README, "Continuous copies with Litestream") these checkpoints stay
/// on, deliberately. Litestream's danger is a checkpoint that lets the WAL *start over*
/// before Litestream has copied its frames; what its docs warn against is RESTART/TRUNCATE
/// checkpoints (which wait out readers and reset the WAL) and the app checkpointing in the
/// moment Litestream has let go of its read lock. Neither happens here: every checkpoint
/// Docobo runs, here and in the writer, is PASSIVE (never waits, never resets the WAL
/// itself), and Litestream (0.5) holds a read transaction at all times except inside its
/// own checkpoint, which it runs while holding the write lock after copying the WAL to its
/// end. A read transaction with a snapshot in the WAL keeps SQLite from starting the WAL
/// over (a PASSIVE checkpoint then copies frames into the database file, which leaves the
/// WAL, and so what Litestream reads, unchanged); one whose snapshot predates the WAL keeps
/// any frame from being checkpointed at all. So while Litestream runs, the WAL starts over
/// only at Litestream's checkpoints, and these rounds cost little. Turning them off instead
/// would leave the WAL to grow without bound whenever Litestream is stopped or has crashed.
/// `tests/it/recovery.rs` replicates under load with both checkpointers running and checks
/// that Litestream never logged losing its place in the WAL.
pub(super) fn start_checkpointer(
    alive: Weak<PathBuf>,
    conn: Connection,
    wal_too_long: WalTooLong,
    health: Arc<WriteHealth>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("docobo-db-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(path) = alive.upgrade() else {
                    // The last handle is gone: one last checkpoint, then stop.
                    let _ = checkpoint(&conn);
                    return;
                };
                match checkpoint(&conn) {
                    Ok(frames) => {
                        if frames > WAL_LIMIT_FRAMES {
                            wal_too_long.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) if is_disk_error(&e) => {
                        if !health.failing() {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retrying shortly");
                        }
                        health.record(Err(&e), &path);
                    }
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying shortly"),
                }
            }
        })?;
    Ok(())
}

/// One round of checkpoints (see [`start_checkpointer`]); returns the WAL's length in
/// frames as the last checkpoint found it.
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    // A round reports the WAL as it was when the round began: writes committed while it
    // ran are not in its figures. Only a round that finds nothing new to copy shows that
    // the WAL was complete, so that the next write starts it over.
    let mut complete_at = None;
    let mut frames = 0;
    for _ in 0..CATCH_UP_ROUNDS {
        let copied;
        (frames, copied) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })?;
        if frames == copied && complete_at == Some(frames) {
            break;
        }
        complete_at = (frames == copied).then_some(frames);
    }
    Ok(frames)
}
