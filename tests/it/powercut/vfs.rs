//! A SQLite VFS shim that models a power cut: it remembers, for each tracked file, what its
//! content was at its last successful `fsync` (`xSync`), which is all a disk keeps when the
//! power goes. [`cut`] writes those images to a folder, as the disk would hold them after the
//! cut; opening them there is the recovery after reboot.
//!
//! The shim wraps the default (`unix`) VFS and forwards every call to it unchanged; only
//! `xOpen` (to note which files to track) and `xSync` (to take the image) do more. It is the
//! same model as `LazyFS` (writes not fsynced are lost, all of them, at the moment of the cut),
//! and like `LazyFS` it cannot model a disk that acknowledges an fsync it did not do, nor torn
//! sector writes within a synced range.
//!
//! The image is the whole file read through the page cache just before `fsync` is called,
//! and it becomes the durable image when that `fsync` returns. Every write in it was made
//! before the `fsync`, so the `fsync` made it durable (it flushes the file, not a file
//! descriptor, so writes by any connection count). A write that lands between the read and
//! the `fsync` is durable on a real disk but not in the image: the model errs towards loss,
//! never towards keeping what a disk would not have kept. A cut that comes while an `fsync`
//! is still running gets the image from before it, as a disk would; it does not wait.

#![allow(
    unsafe_code,
    reason = "a VFS is C callbacks over raw pointers; each block says why it is sound"
)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use rusqlite::ffi;

/// Files under these folders are tracked (others pass through untouched).
static TRACKED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The durable image of each tracked file: its content at its last fsync, with the number
/// of the read that took it (see [`READS`]).
static DURABLE: Mutex<Option<HashMap<PathBuf, Image>>> = Mutex::new(None);

/// A durable image: the number of the read that took it, and the bytes.
type Image = (u64, Vec<u8>);

/// Numbers the images in the order they were read, so that of two `fsync`s of one file that
/// overlap (the writer's and the checkpointer's), the one that read later wins, whichever
/// returns last. Held across the read, so the numbers follow the reads.
static READS: Mutex<u64> = Mutex::new(0);

/// The real VFS, found once.
struct Real(*mut ffi::sqlite3_vfs);

// SAFETY: the pointer is to SQLite's static `unix` VFS object, which lives for the whole
// process and which SQLite itself calls from any thread (it is threadsafe in the bundled
// build's serialized mode).
unsafe impl Send for Real {}
// SAFETY: as above; the pointer is only read.
unsafe impl Sync for Real {}

static REAL: OnceLock<Real> = OnceLock::new();

/// Our file: SQLite's header (pointing at [`METHODS`]), where we track it, then the real
/// VFS's file in the rest of the `szOsFile` bytes SQLite allocated.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    /// `Box<PathBuf>` of a tracked file, else null.
    tracked: *mut PathBuf,
}

/// The real file lives right after our header (8-byte aligned: our header is two pointers).
const REAL_OFFSET: usize = std::mem::size_of::<ShimFile>();
const _: () = assert!(REAL_OFFSET.is_multiple_of(8));

/// # Safety
/// `file` must be a `ShimFile` that SQLite allocated with our `szOsFile`.
unsafe fn real_file(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    // SAFETY: the allocation is `REAL_OFFSET + real szOsFile` bytes (see `register`).
    unsafe { file.cast::<u8>().add(REAL_OFFSET).cast() }
}

/// # Safety
/// As [`real_file`], and the real file must be open (its `pMethods` set).
unsafe fn real_methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    // SAFETY: an open real file points at the real VFS's static methods table.
    unsafe { &*(*real_file(file)).pMethods }
}

/// Registers the shim as the default VFS (once per process) and tracks the files under
/// `dir`.
pub fn track(dir: &Path) {
    register();
    TRACKED_DIRS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(dir.to_owned());
}

/// Writes what the disk would hold after a power cut now: the durable image of every
/// tracked file under `dir`, into `into` under the same names. A file never fsynced is
/// absent. Holds the lock under which `xSync` records an image, so the cut is one instant;
/// an `fsync` still running then has not recorded its image yet, and does not count.
pub fn cut(dir: &Path, into: &Path) -> Vec<PathBuf> {
    let durable = DURABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let mut written = Vec::new();
    for (path, (_, bytes)) in durable.iter().flatten() {
        let (Ok(rest), Some(name)) = (path.strip_prefix(dir), path.file_name()) else {
            continue;
        };
        assert!(rest.parent().is_none_or(|p| p.as_os_str().is_empty()));
        let target = into.join(name);
        std::fs::write(&target, bytes).expect("write the durable image");
        written.push(target);
    }
    written
}

fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a null name asks for the default VFS, which SQLite initialises on demand.
        let real = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        assert!(!real.is_null(), "SQLite has no default VFS");
        let _ = REAL.set(Real(real));
        // SAFETY: `real` is SQLite's static default VFS (see `Real`); we copy it and change
        // only our own fields. The copy keeps `pAppData` and `mxPathname`, which is all the
        // unix VFS's other methods read from the VFS pointer they are given.
        let mut shim = unsafe { *real };
        let name = CString::new("docobo-powercut").expect("name");
        shim.zName = name.into_raw();
        shim.szOsFile += c_int::try_from(REAL_OFFSET).expect("size");
        shim.xOpen = Some(open);
        shim.pNext = std::ptr::null_mut();
        let shim = Box::into_raw(Box::new(shim));
        // SAFETY: `shim` is a valid VFS that lives for ever (leaked); 1 makes it the default.
        let rc = unsafe { ffi::sqlite3_vfs_register(shim, 1) };
        assert_eq!(rc, ffi::SQLITE_OK, "registering the VFS shim");
    });
}

fn is_tracked(path: &Path) -> bool {
    TRACKED_DIRS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|dir| path.starts_with(dir))
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(real) = REAL.get() else {
        return ffi::SQLITE_ERROR;
    };
    let shim = file.cast::<ShimFile>();
    // SAFETY: SQLite hands us `szOsFile` writable bytes at `file`; `real_file` is inside them.
    let rc = unsafe {
        (*shim).base.pMethods = std::ptr::null();
        (*shim).tracked = std::ptr::null_mut();
        let Some(real_open) = (*real.0).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        real_open(real.0, name, real_file(file), flags, out_flags)
    };
    if rc != ffi::SQLITE_OK {
        // pMethods stays null: SQLite will not call xClose on a file that did not open.
        return rc;
    }
    let durable_kind = flags & (ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_WAL) != 0;
    if durable_kind && !name.is_null() {
        // SAFETY: a non-null name is a NUL-terminated path that outlives the file.
        let path = PathBuf::from(unsafe { CStr::from_ptr(name) }.to_string_lossy().as_ref());
        if is_tracked(&path) {
            // SAFETY: `shim` is ours (above).
            unsafe { (*shim).tracked = Box::into_raw(Box::new(path)) };
        }
    }
    // SAFETY: as above; from now on SQLite calls our methods, which forward.
    unsafe { (*shim).base.pMethods = &raw const METHODS };
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let shim = file.cast::<ShimFile>();
    // SAFETY: SQLite calls xClose once on a file our `open` opened.
    unsafe {
        if !(*shim).tracked.is_null() {
            drop(Box::from_raw((*shim).tracked));
            (*shim).tracked = std::ptr::null_mut();
        }
        match real_methods(file).xClose {
            Some(real_close) => real_close(real_file(file)),
            None => ffi::SQLITE_OK,
        }
    }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let shim = file.cast::<ShimFile>();
    // SAFETY: an open file of ours (SQLite calls methods only on open files); `tracked` is
    // null or our Box.
    let image = unsafe { (*shim).tracked.as_ref() }.and_then(|path| {
        let mut reads = READS.lock().unwrap_or_else(PoisonError::into_inner);
        *reads += 1;
        std::fs::read(path).ok().map(|bytes| (path, *reads, bytes))
    });
    // SAFETY: an open file of ours, as above.
    let rc = unsafe {
        match real_methods(file).xSync {
            Some(real_sync) => real_sync(real_file(file), flags),
            None => ffi::SQLITE_OK,
        }
    };
    if rc == ffi::SQLITE_OK
        && let Some((path, read, bytes)) = image
    {
        let mut durable = DURABLE.lock().unwrap_or_else(PoisonError::into_inner);
        let images = durable.get_or_insert_with(HashMap::new);
        if images.get(path).is_none_or(|(newest, _)| *newest < read) {
            images.insert(path.clone(), (read, bytes));
        }
    }
    rc
}

/// Forwarders for the methods the shim does not change.
macro_rules! forward {
    ($($name:ident: $field:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $default:expr;)*) => {$(
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite calls methods only on files our `open` opened, whose real file
            // is open; the arguments are passed on as SQLite gave them.
            unsafe {
                match real_methods(file).$field {
                    Some(f) => f(real_file(file) $(, $arg)*),
                    None => $default,
                }
            }
        }
    )*};
}

forward! {
    read: xRead(buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR;
    write: xWrite(buf: *const c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR;
    truncate: xTruncate(size: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR;
    file_size: xFileSize(size: *mut ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR;
    lock: xLock(level: c_int) -> c_int = ffi::SQLITE_IOERR;
    unlock: xUnlock(level: c_int) -> c_int = ffi::SQLITE_IOERR;
    check_reserved_lock: xCheckReservedLock(out: *mut c_int) -> c_int = ffi::SQLITE_IOERR;
    file_control: xFileControl(op: c_int, arg: *mut c_void) -> c_int = ffi::SQLITE_NOTFOUND;
    sector_size: xSectorSize() -> c_int = 4096;
    device_characteristics: xDeviceCharacteristics() -> c_int = 0;
    shm_map: xShmMap(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int = ffi::SQLITE_IOERR;
    shm_lock: xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int = ffi::SQLITE_IOERR;
    shm_unmap: xShmUnmap(delete: c_int) -> c_int = ffi::SQLITE_OK;
    fetch: xFetch(offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void) -> c_int = ffi::SQLITE_OK;
    unfetch: xUnfetch(offset: ffi::sqlite3_int64, page: *mut c_void) -> c_int = ffi::SQLITE_OK;
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: as in `forward!`.
    unsafe {
        if let Some(f) = real_methods(file).xShmBarrier {
            f(real_file(file));
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};
