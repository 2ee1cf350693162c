//! The SQLite store: the only module that opens connections.
//!
//! Every connection gets `journal_mode=WAL`, `synchronous=FULL` (see [`Synchronous`]),
//! `foreign_keys=ON`, a `busy_timeout`, in-memory temp storage and a `journal_size_limit`. Write transactions
//! begin IMMEDIATE ([`write_transaction`]); a background thread checkpoints the WAL (see
//! `writer`). Migrations (`migrations/*.sql`, embedded by refinery) run before anything
//! else touches the file. Blocking SQLite work never runs on a tokio worker thread: async code
//! goes through [`Db::call`], which runs the closure on the blocking pool.
//!
//! Repository functions (in the submodules) are plain functions over a `&Connection` that take
//! and return domain types, so one transaction can span several of them.

pub mod admin;
mod backup;
pub mod doctor;
pub mod guilds;
mod lock;
pub mod members;
pub mod paid_roles;
pub mod reminders;
mod restore;
pub mod retention;
pub mod revenue;
pub mod subscriptions;
pub mod tiers;
pub mod webhook_events;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use backup::backup_to;
pub use lock::{ServerLock, lock_path};
pub use restore::{RestoreReport, restore_from};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Errors from the store. Messages say what to do; they never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "cannot open the database {path}: {source}. Fix: check that the folder exists and is writable by this user, or set database.path"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "cannot create the database folder {path}: {source}. Fix: create it, or set database.path to a writable location"
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value that the domain refuses (a corrupt or hand-edited row).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    /// Another write got there first; the caller's whole write is rolled back.
    #[error("{0}; retry")]
    Conflict(String),
    #[error("database commit failed: {0}")]
    Commit(String),
    #[error("the database writer stopped; restart Docobo")]
    WriterGone,
    #[error("the write was aborted (it panicked or its transaction could not start)")]
    WriteAborted,
    #[error("cannot start the database writer thread: {0}")]
    StartWriter(#[source] std::io::Error),
    #[error("backup failed: {0}")]
    Backup(String),
    /// Another process (a running `docobo serve`) holds the database's lock.
    #[error(
        "a Docobo server is running on {database} (it holds the lock {lock}), so {doing} cannot run now. Fix: stop it first (`sudo systemctl stop docobo`, `docker stop docobo`, or Ctrl-C), then try again"
    )]
    InUse {
        database: PathBuf,
        lock: PathBuf,
        doing: String,
    },
    #[error(
        "cannot lock {path}: {message}. Fix: check that the database folder is writable by this user and on a local disk (not a network share)"
    )]
    Lock { path: PathBuf, message: String },
    #[error("restore refused: {0}")]
    Restore(String),
    #[error("the database task stopped unexpectedly: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DbError {
    /// Whether this is a UNIQUE (or PRIMARY KEY) constraint violation.
    #[must_use]
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Sqlite(e) if is_unique_violation(e))
    }
}

/// Whether a rusqlite error is a UNIQUE (or PRIMARY KEY) constraint violation.
#[must_use]
pub fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// A cheap, cloneable handle to the database.
#[derive(Debug, Clone)]
pub struct Db {
    /// One connection shared by every task. SQLite serializes writers anyway, and a single
    /// connection keeps transactions simple; the mutex is a std one because it is only ever
    /// held on the blocking pool, never across an `.await`.
    conn: Arc<Mutex<Connection>>,
    /// A second connection for reads on the request path, so that looking something up never
    /// waits behind the writer's batch (WAL lets readers run beside the writer).
    reader: Arc<Mutex<Connection>>,
    /// A third connection for the dashboard's reads, which count and list thousands of rows
    /// (a recount takes ≈ 250 ms at 100 000 subscriptions): on `reader`, the webhook path's
    /// key lookups would queue behind them.
    slow_reader: Arc<Mutex<Connection>>,
    /// Queue of the group-commit writer thread (see `writer`), which uses the same
    /// connection.
    writes: tokio::sync::mpsc::UnboundedSender<writer::Job>,
    /// Whether the last write could be made (see [`Db::writable`]).
    health: Arc<writer::WriteHealth>,
    /// Writes (and `call`s) finished: see [`Db::generation`].
    changes: Arc<AtomicU64>,
    path: Arc<PathBuf>,
    busy_timeout: Duration,
}

/// Runs `work` on one of the read connections, on tokio's blocking pool.
async fn read_on<T, F>(conn: &Arc<Mutex<Connection>>, work: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
{
    let conn = Arc::clone(conn);
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        work(&conn)
    })
    .await?
}

/// When SQLite reports a commit done, which is when a webhook is acknowledged.
///
/// In WAL mode, `FULL` fsyncs the WAL at every commit; the group-commit writer makes that one
/// fsync per batch of writes, not per delivery. `NORMAL` fsyncs only at checkpoints, so a
/// power cut (not a crash: the kernel still has the pages) loses every commit since the last
/// checkpoint, after the provider was told the delivery arrived, and it never sends it again.
/// Every write goes through one connection (the writer's), so there is no class of write
/// that is kept on `NORMAL`: the reader and the checkpointer connections commit nothing, and
/// a checkpoint fsyncs the WAL and the database file in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Durable at commit (the default).
    #[default]
    Full,
    /// Durable at the next checkpoint (at most ~100 ms later); safe against crashes, not
    /// against power loss.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How [`Db::open_with`] opens the file.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// How long a connection waits for a lock before failing.
    pub busy_timeout: Duration,
    pub synchronous: Synchronous,
}

impl OpenOptions {
    /// The defaults (durable commits) with this busy timeout.
    #[must_use]
    pub fn new(busy_timeout: Duration) -> Self {
        Self {
            busy_timeout,
            synchronous: Synchronous::Full,
        }
    }
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names of the migrations applied by this run (empty when already up to date).
    pub applied: Vec<String>,
}

impl Db {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    /// Blocking: call from `main` before the runtime is busy, or through `spawn_blocking`.
    ///
    /// # Errors
    /// The folder or file cannot be created or opened, or a migration fails.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<(Self, MigrationReport), DbError> {
        Self::open_with(path, OpenOptions::new(busy_timeout))
    }

    /// [`Db::open`] with every option given.
    ///
    /// # Errors
    /// As [`Db::open`].
    pub fn open_with(
        path: &Path,
        options: OpenOptions,
    ) -> Result<(Self, MigrationReport), DbError> {
        let OpenOptions {
            busy_timeout,
            synchronous,
        } = options;
        let connect = |path: &Path| {
            let conn = open_connection(path, busy_timeout)?;
            conn.pragma_update(None, "synchronous", synchronous.pragma())
                .map_err(|source| DbError::Open {
                    path: path.to_owned(),
                    source,
                })?;
            Ok::<_, DbError>(conn)
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = connect(path)?;
        let report = migrate(&mut conn)?;
        // The writer never checkpoints itself: a checkpoint fsyncs the database file, and
        // measured under load those fsyncs (up to 12 ms each, ~30 a second) stalled every
        // write queued behind them. A background thread checkpoints instead (below).
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|source| DbError::Open {
                path: path.to_owned(),
                source,
            })?;
        let reader = Arc::new(Mutex::new(connect(path)?));
        let slow_reader = Arc::new(Mutex::new(connect(path)?));
        let conn = Arc::new(Mutex::new(conn));
        let wal_too_long = writer::WalTooLong::default();
        let health = Arc::new(writer::WriteHealth::default());
        let writes = writer::start(
            Arc::clone(&conn),
            Arc::clone(&wal_too_long),
            Arc::clone(&health),
            path.to_owned(),
        )
        .map_err(DbError::StartWriter)?;
        let path = Arc::new(path.to_owned());
        writer::start_checkpointer(
            Arc::downgrade(&path),
            connect(&path)?,
            wal_too_long,
            Arc::clone(&health),
        )
        .map_err(DbError::StartWriter)?;
        Ok((
            Self {
                conn,
                reader,
                slow_reader,
                writes,
                health,
                changes: Arc::default(),
                path,
                busy_timeout,
            },
            report,
        ))
    }

    /// Runs blocking database work on tokio's blocking pool.
    ///
    /// # Errors
    /// Whatever the closure returns, or [`DbError::Task`] if it panicked.
    pub async fn call<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let done = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the connection itself is still
            // sound (an open transaction was rolled back when it was dropped).
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await;
        self.changed();
        done?
    }

    /// How many writes have finished (through [`Db::write`] or [`Db::call`], committed or
    /// not): a value read from the store after this returned `n` includes every change
    /// counted in `n`. The dashboard's kept summary compares it (`crate::web::cache`);
    /// one atomic add per write.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    fn changed(&self) {
        // Release, after the commit: whoever reads the new count then sees the commit.
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// Runs a small write in a transaction shared with other concurrent writes (group
    /// commit): it returns once the shared transaction is committed. The closure runs in its
    /// own savepoint: an `Err` rolls back this write only.
    ///
    /// # Errors
    /// Whatever the closure returns, or a commit error.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (job, reply) = writer::job(work);
        self.writes.send(job).map_err(|_| DbError::WriterGone)?;
        let done = reply.await.map_err(|_| DbError::WriteAborted);
        self.changed();
        done?
    }

    /// Runs a read on the reader connection, on tokio's blocking pool. Writes made through
    /// it would bypass nothing (SQLite still serializes them) but belong in [`Db::call`] or
    /// [`Db::write`].
    ///
    /// # Errors
    /// Whatever the closure returns, or [`DbError::Task`] if it panicked.
    pub async fn read<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        read_on(&self.reader, work).await
    }

    /// Runs a read that may take long (the dashboard's) on a connection of its own, so that
    /// it never holds up [`Db::read`]'s, which the request path uses.
    ///
    /// # Errors
    /// Whatever the closure returns, or [`DbError::Task`] if it panicked.
    pub async fn read_slow<T, F>(&self, work: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        read_on(&self.slow_reader, work).await
    }

    /// Checks that the database answers (for `/health`).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Whether the database can be written now (for `/health`): what the writer saw in the
    /// last few seconds (a success, or the failure that has not been followed by five
    /// seconds of successes), else the outcome of a probe write (it flips `PRAGMA user_version` between 0 and 1, which Docobo does not use:
    /// one page to the WAL, through the writer like any delivery).
    ///
    /// # Errors
    /// Why it cannot, in words ("the disk is full", …).
    pub async fn writable(&self) -> Result<(), String> {
        if let Some(known) = self.health.recent(WRITABLE_RECENTLY) {
            return known;
        }
        let probe = self
            .write(|conn| {
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                conn.pragma_update(None, "user_version", i64::from(version == 0))?;
                Ok(())
            })
            .await;
        match (probe, self.health.recent(WRITABLE_RECENTLY)) {
            (_, Some(known)) => known,
            (Ok(()), None) => Ok(()),
            (Err(e), None) => Err(e.to_string()),
        }
    }

    /// While the database cannot be written at all (a full disk, a read-only file system):
    /// why and what to do, as the writer last saw it. No write is tried.
    #[must_use]
    pub fn unwritable(&self) -> Option<(String, &'static str)> {
        self.health.failure()
    }

    /// A consistent copy of the live database at `dest` (see [`backup_to`]).
    pub async fn backup(&self, dest: PathBuf) -> Result<(), DbError> {
        let source = Arc::clone(&self.path);
        let busy = self.busy_timeout;
        tokio::task::spawn_blocking(move || backup_to(&source, &dest, busy)).await?
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How recent a successful commit must be for [`Db::writable`] to take it as the answer
/// without a probe write.
const WRITABLE_RECENTLY: Duration = Duration::from_secs(5);

/// Starts a write transaction: `BEGIN IMMEDIATE`, which takes SQLite's write lock at once,
/// waiting up to the busy timeout. A deferred transaction that reads first and writes second
/// cannot wait: if another connection (the checkpointer) holds the write lock when it
/// upgrades, SQLite fails it at once with "database is locked".
///
/// # Errors
/// The write lock stays taken for longer than the busy timeout.
pub fn write_transaction(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Bytes of WAL file kept when the WAL starts over (see [`open_connection`]). Well above
/// the length at which the writer finishes a checkpoint itself ([`writer::WAL_LIMIT_FRAMES`]
/// frames of 4 KiB pages plus their 24-byte headers), so that starting over after a burst
/// reuses the file instead of cutting it back: measured after a saturation phase, that
/// `ftruncate` ran on the writer thread, concurrently with a checkpoint's fsync, and took
/// 8 and 63 ms, every write queued meanwhile waiting. Only a WAL that sustained overload
/// pushed past this is cut back (once).
const JOURNAL_SIZE_LIMIT: i64 = 96 * 1024 * 1024;
const _: () = assert!(JOURNAL_SIZE_LIMIT > writer::WAL_LIMIT_FRAMES * (4096 + 24) * 5 / 4);

/// Opens one connection with Docobo's pragmas.
///
/// # Errors
/// The file cannot be opened, or a pragma is refused.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, DbError> {
    let open = |source| DbError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(open)?;
    conn.busy_timeout(busy_timeout).map_err(open)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode (network filesystem?); continuing");
    }
    // Durable commits unless the caller says otherwise (see [`Synchronous`]).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open)?;
    // Savepoint journals (every group-committed write has a savepoint) stay in memory
    // instead of spilling to a temporary file on disk: measured, those file writes were a
    // quarter of the writer thread's time and stalled it behind the kernel's writeback.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(open)?;
    // When the WAL starts over, a file that overload made larger is cut back to this size
    // (the default keeps it at its largest for ever). Below it, the file is reused in place.
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(open)?;
    Ok(conn)
}

/// Applies pending migrations.
///
/// # Errors
/// A migration fails (the database is left at the last good version).
pub fn migrate(conn: &mut Connection) -> Result<MigrationReport, DbError> {
    let report = embedded::migrations::runner().run(conn)?;
    Ok(MigrationReport {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect(),
    })
}

/// Migrates `conn` up to migration `version` only: for tests of a later migration (a
/// database as an older release left it).
///
/// # Errors
/// A migration failed.
#[doc(hidden)]
pub fn migrate_to(conn: &mut Connection, version: i32) -> Result<(), DbError> {
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run(conn)?;
    Ok(())
}

/// Reads a snowflake column, refusing corrupt values.
pub(crate) fn id_from<M>(table: &'static str, value: i64) -> Result<crate::domain::Id<M>, DbError> {
    crate::domain::Id::from_i64(value).map_err(|e| DbError::Corrupt {
        table,
        message: e.to_string(),
    })
}

/// Current unix time in milliseconds (wall clock).
#[must_use]
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
