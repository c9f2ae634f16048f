//! The engine's side: load a shim library, check its table, open a handle,
//! and call it through safe methods.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use libloading::Library;

use crate::abi::{
    ABI_VERSION_V1, CloseFn, ENTRY_POINT_V1, ENTRY_POINT_V1_C, EntryPointV1, HandleFn, OpenFn,
    STATUS_BUFFER_TOO_SMALL, STATUS_FAILED, STATUS_INVALID_ARGUMENT, STATUS_OK, STATUS_PANIC,
    ServiceFn, ShimBuffer, ShimHandle, ShimTableV1, Status, TABLE_V1_SIZE, WakeFn,
};
use crate::args::{NulInArgument, encode_args};
use crate::config::ShimConfig;

/// How much room an error message gets.
const MESSAGE_CAPACITY: usize = 4096;
/// The first buffer `describe` gets; it may ask for more.
const DESCRIBE_CAPACITY: usize = 8192;
/// The most `describe` may ask for.
const DESCRIBE_LIMIT: usize = 1 << 20;

/// Why a shim could not be loaded or a call failed. Every variant names the
/// library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShimError {
    /// The library could not be loaded (missing file, wrong architecture,
    /// unresolved dependencies, ...).
    #[error("cannot load shim library {}: {source}", path.display())]
    Load {
        /// The library.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The library loads but does not export the entry point.
    #[error("{} is not a upkeep shim: it does not export `{ENTRY_POINT_V1}` ({source})", path.display())]
    NotAShim {
        /// The library.
        path: PathBuf,
        /// The loader's error.
        source: libloading::Error,
    },
    /// The entry point returned null, or a table that breaks the ABI.
    #[error("shim {} has an invalid function table: {reason}", path.display())]
    BadTable {
        /// The library.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The table is of an ABI version this engine does not speak.
    #[error(
        "shim {} speaks ABI version {found}; this engine speaks version {ABI_VERSION_V1}",
        path.display()
    )]
    AbiVersion {
        /// The library.
        path: PathBuf,
        /// The version the table declares.
        found: u32,
    },
    /// An argument cannot cross the ABI (the shim was not called).
    #[error("shim {}: {reason}", path.display())]
    Argument {
        /// The library.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The shim ran the function and reported a failure.
    #[error("shim {} failed in {function} ({}): {message}", path.display(), status_name(*status))]
    Call {
        /// The library.
        path: PathBuf,
        /// The table function.
        function: &'static str,
        /// The status it returned.
        status: Status,
        /// The message it wrote (empty if none).
        message: String,
    },
}

impl ShimError {
    /// The status a failed call returned, if this is a call failure.
    pub fn status(&self) -> Option<Status> {
        match self {
            ShimError::Call { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A readable name for a status code.
pub fn status_name(status: Status) -> String {
    match status {
        STATUS_OK => "ok".into(),
        STATUS_FAILED => "failed".into(),
        STATUS_INVALID_ARGUMENT => "invalid argument".into(),
        STATUS_BUFFER_TOO_SMALL => "buffer too small".into(),
        STATUS_PANIC => "panic".into(),
        other => format!("status {other}"),
    }
}

/// The table's functions, checked non-null at load.
#[derive(Debug, Clone, Copy)]
struct Functions {
    close: CloseFn,
    register_service: ServiceFn,
    swap_service: ServiceFn,
    unregister_service: HandleFn,
    register_wake: WakeFn,
    unregister_wake: HandleFn,
    describe: HandleFn,
}

/// A loaded shim with one open handle.
///
/// Calls are serialised by an internal lock (the ABI lets a handle be used
/// by one thread at a time), so a `Shim` can be shared between threads.
/// Dropping it closes the handle, then unloads the library.
pub struct Shim {
    path: PathBuf,
    functions: Functions,
    /// The handle; only touched under the lock.
    handle: Mutex<ShimHandle>,
    /// Declared last: unloaded after the handle is closed (in `drop`).
    _library: Library,
}

// SAFETY: the handle is only used under the mutex, one thread at a time, as
// the ABI requires; the ABI also requires a handle to be usable from any
// thread (never tied to the thread that opened it). The function pointers
// and the library are plain shareable values.
unsafe impl Send for Shim {}
// SAFETY: every access to the handle goes through the mutex.
unsafe impl Sync for Shim {}

impl std::fmt::Debug for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim").field("path", &self.path).finish()
    }
}

impl Shim {
    /// Loads the shim library at `path`, checks its version 1 table and
    /// opens a handle with `config`.
    pub fn load(path: &Path, config: &ShimConfig) -> Result<Shim, ShimError> {
        let path = path.to_path_buf();
        // SAFETY: loading runs the library's initialisers. A shim library is
        // part of the installation the engine trusts (like its own binary);
        // the path comes from the engine's configuration, not from a
        // download.
        let library =
            unsafe { Library::new(path.as_os_str()) }.map_err(|source| ShimError::Load {
                path: path.clone(),
                source,
            })?;
        // SAFETY: `EntryPointV1` is the type the ABI gives this symbol.
        let entry = unsafe { library.get::<EntryPointV1>(ENTRY_POINT_V1_C) }.map_err(|source| {
            ShimError::NotAShim {
                path: path.clone(),
                source,
            }
        })?;
        // SAFETY: the entry point takes no arguments and returns a pointer to
        // a static table (or null), per the ABI.
        let table_ptr = unsafe { entry() };
        let (open, functions) = check_table(&path, table_ptr)?;
        tracing::debug!(shim = %path.display(), "loaded shim table v1");

        let text = config.to_text();
        let mut handle: ShimHandle = std::ptr::null_mut();
        let mut message = vec![0u8; MESSAGE_CAPACITY];
        let mut out = buffer(&mut message);
        // SAFETY: the text and `handle` outlive the call; `out` describes
        // `message`.
        let status = unsafe { open(text.as_ptr(), text.len(), &mut handle, &mut out) };
        if status != STATUS_OK {
            return Err(call_error(&path, "open", status, &message, &out));
        }
        if handle.is_null() {
            return Err(ShimError::BadTable {
                path,
                reason: "open succeeded but returned a null handle".into(),
            });
        }
        Ok(Shim {
            path,
            functions,
            handle: Mutex::new(handle),
            _library: library,
        })
    }

    /// The library this shim was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers the engine's service, running `exe` with `args`.
    pub fn register_service(&self, exe: &Path, args: &[String]) -> Result<(), ShimError> {
        self.service_call(
            "register_service",
            self.functions.register_service,
            exe,
            args,
        )
    }

    /// Points the registered service(s) at `exe` with `args`, used when a
    /// new version activates.
    pub fn swap_service(&self, exe: &Path, args: &[String]) -> Result<(), ShimError> {
        self.service_call("swap_service", self.functions.swap_service, exe, args)
    }

    /// Removes the service; nothing registered is not an error.
    pub fn unregister_service(&self) -> Result<(), ShimError> {
        self.handle_call("unregister_service", self.functions.unregister_service)
    }

    /// Registers a wake every `interval` (whole seconds, at least one),
    /// running `exe` with `args`.
    pub fn register_wake(
        &self,
        interval: Duration,
        exe: &Path,
        args: &[String],
    ) -> Result<(), ShimError> {
        let seconds = interval.as_secs();
        if seconds == 0 {
            return Err(self.argument("the wake interval must be at least one second"));
        }
        let (exe, args) = self.command(exe, args)?;
        let function = self.functions.register_wake;
        self.call("register_wake", |handle, out| {
            // SAFETY: the strings outlive the call; `handle` is live and
            // locked; `out` is a valid buffer.
            unsafe {
                function(
                    handle,
                    seconds,
                    exe.as_ptr(),
                    exe.len(),
                    args.as_ptr(),
                    args.len(),
                    out,
                )
            }
        })
    }

    /// Removes the wake; nothing registered is not an error.
    pub fn unregister_wake(&self) -> Result<(), ShimError> {
        self.handle_call("unregister_wake", self.functions.unregister_wake)
    }

    /// A human-readable description of what is registered.
    pub fn describe(&self) -> Result<String, ShimError> {
        let describe = self.functions.describe;
        let handle = self.lock();
        let mut capacity = DESCRIBE_CAPACITY;
        loop {
            let mut text = vec![0u8; capacity];
            let mut out = buffer(&mut text);
            // SAFETY: `handle` is live and locked; `out` describes `text`.
            let status = unsafe { describe(*handle, &mut out) };
            match status {
                STATUS_OK => {
                    if out.len > capacity {
                        return Err(
                            self.bad_table("describe reported more bytes than it had room for")
                        );
                    }
                    text.truncate(out.len);
                    return String::from_utf8(text)
                        .map_err(|_| self.bad_table("describe wrote invalid UTF-8"));
                }
                STATUS_BUFFER_TOO_SMALL if out.len > capacity && out.len <= DESCRIBE_LIMIT => {
                    capacity = out.len;
                }
                STATUS_BUFFER_TOO_SMALL => {
                    return Err(self.bad_table(&format!(
                        "describe asked for {} bytes with {capacity} given (limit {DESCRIBE_LIMIT})",
                        out.len
                    )));
                }
                _ => return Err(call_error(&self.path, "describe", status, &text, &out)),
            }
        }
    }

    fn service_call(
        &self,
        name: &'static str,
        function: ServiceFn,
        exe: &Path,
        args: &[String],
    ) -> Result<(), ShimError> {
        let (exe, args) = self.command(exe, args)?;
        self.call(name, |handle, out| {
            // SAFETY: the strings outlive the call; `handle` is live and
            // locked; `out` is a valid buffer.
            unsafe {
                function(
                    handle,
                    exe.as_ptr(),
                    exe.len(),
                    args.as_ptr(),
                    args.len(),
                    out,
                )
            }
        })
    }

    fn handle_call(&self, name: &'static str, function: HandleFn) -> Result<(), ShimError> {
        // SAFETY: `handle` is live and locked; `out` is a valid buffer.
        self.call(name, |handle, out| unsafe { function(handle, out) })
    }

    /// Runs one table call under the lock with a fresh message buffer.
    fn call(
        &self,
        name: &'static str,
        f: impl FnOnce(ShimHandle, *mut ShimBuffer) -> Status,
    ) -> Result<(), ShimError> {
        let handle = self.lock();
        let mut message = vec![0u8; MESSAGE_CAPACITY];
        let mut out = buffer(&mut message);
        let status = f(*handle, &mut out);
        tracing::debug!(shim = %self.path.display(), function = name, status, "shim call");
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(call_error(&self.path, name, status, &message, &out))
        }
    }

    fn command(&self, exe: &Path, args: &[String]) -> Result<(String, String), ShimError> {
        let exe = exe
            .to_str()
            .ok_or_else(|| {
                self.argument(format!(
                    "executable path {} is not valid UTF-8",
                    exe.display()
                ))
            })?
            .to_owned();
        let args = encode_args(args).map_err(|NulInArgument { index }| {
            self.argument(format!("argument {index} contains a NUL byte"))
        })?;
        Ok((exe, args))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShimHandle> {
        // A panic while holding the lock leaves the handle as valid as any
        // failed call does.
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn argument(&self, reason: impl Into<String>) -> ShimError {
        ShimError::Argument {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn bad_table(&self, reason: &str) -> ShimError {
        ShimError::BadTable {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let handle = *self.lock();
        let mut message = vec![0u8; MESSAGE_CAPACITY];
        let mut out = buffer(&mut message);
        // SAFETY: the handle came from `open` and is closed exactly once,
        // here, before the library is unloaded.
        let status = unsafe { (self.functions.close)(handle, &mut out) };
        if status != STATUS_OK {
            let e = call_error(&self.path, "close", status, &message, &out);
            tracing::warn!("{e}");
        }
    }
}

/// Validates the table behind `table` and copies its functions out.
fn check_table(path: &Path, table: *const ShimTableV1) -> Result<(OpenFn, Functions), ShimError> {
    let bad = |reason: &str| ShimError::BadTable {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    if table.is_null() {
        return Err(bad("the entry point returned null"));
    }
    if !table.cast::<u32>().is_aligned() || !table.is_aligned() {
        return Err(bad("the table is not aligned"));
    }
    // SAFETY: non-null and aligned; the two header fields exist in every ABI
    // version, so reading them is valid whatever version the table is.
    let (abi_version, size) = unsafe {
        let header = table.cast::<u32>();
        (header.read(), header.add(1).read())
    };
    if abi_version != ABI_VERSION_V1 {
        return Err(ShimError::AbiVersion {
            path: path.to_path_buf(),
            found: abi_version,
        });
    }
    if size < TABLE_V1_SIZE {
        return Err(bad(&format!(
            "it declares {size} bytes, fewer than the {TABLE_V1_SIZE} of version 1"
        )));
    }
    // SAFETY: a version 1 table of at least `TABLE_V1_SIZE` bytes: every
    // field of `ShimTableV1` is present. It is static in the library, which
    // stays loaded while the copied pointers are used.
    let t = unsafe { table.read() };
    let missing = |name: &str| bad(&format!("`{name}` is null"));
    let open = t.open.ok_or_else(|| missing("open"))?;
    let functions = Functions {
        close: t.close.ok_or_else(|| missing("close"))?,
        register_service: t
            .register_service
            .ok_or_else(|| missing("register_service"))?,
        swap_service: t.swap_service.ok_or_else(|| missing("swap_service"))?,
        unregister_service: t
            .unregister_service
            .ok_or_else(|| missing("unregister_service"))?,
        register_wake: t.register_wake.ok_or_else(|| missing("register_wake"))?,
        unregister_wake: t
            .unregister_wake
            .ok_or_else(|| missing("unregister_wake"))?,
        describe: t.describe.ok_or_else(|| missing("describe"))?,
    };
    Ok((open, functions))
}

fn buffer(storage: &mut [u8]) -> ShimBuffer {
    ShimBuffer {
        ptr: storage.as_mut_ptr(),
        cap: storage.len(),
        len: 0,
    }
}

fn call_error(
    path: &Path,
    function: &'static str,
    status: Status,
    storage: &[u8],
    out: &ShimBuffer,
) -> ShimError {
    let len = out.len.min(storage.len());
    let message = String::from_utf8_lossy(&storage[..len]).into_owned();
    ShimError::Call {
        path: path.to_path_buf(),
        function,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{ShimFailure, ShimV1, table_v1};

    /// A shim living in this test binary: its table is checked like a
    /// loaded one.
    struct Fake;

    impl ShimV1 for Fake {
        fn open(_: &ShimConfig) -> Result<Self, ShimFailure> {
            Ok(Fake)
        }
        fn register_service(&mut self, _: &str, _: &[String]) -> Result<(), ShimFailure> {
            Ok(())
        }
        fn swap_service(&mut self, _: &str, _: &[String]) -> Result<(), ShimFailure> {
            Ok(())
        }
        fn unregister_service(&mut self) -> Result<(), ShimFailure> {
            Ok(())
        }
        fn register_wake(&mut self, _: Duration, _: &str, _: &[String]) -> Result<(), ShimFailure> {
            Ok(())
        }
        fn unregister_wake(&mut self) -> Result<(), ShimFailure> {
            Ok(())
        }
        fn describe(&self) -> Result<String, ShimFailure> {
            Ok(String::new())
        }
    }

    fn check(table: &ShimTableV1) -> Result<(), ShimError> {
        check_table(Path::new("/x/libfake.so"), table).map(|_| ())
    }

    #[test]
    fn accepts_a_full_table_and_a_larger_later_one() {
        let mut t = table_v1::<Fake>();
        check(&t).unwrap();
        t.size += 16;
        check(&t).unwrap();
    }

    #[test]
    fn refuses_null_other_versions_short_tables_and_holes() {
        let e = check_table(Path::new("/x/libfake.so"), std::ptr::null()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shim /x/libfake.so has an invalid function table: the entry point returned null"
        );

        let mut t = table_v1::<Fake>();
        t.abi_version = 2;
        let e = check(&t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shim /x/libfake.so speaks ABI version 2; this engine speaks version 1"
        );

        let mut t = table_v1::<Fake>();
        t.size = 8;
        assert!(
            check(&t)
                .unwrap_err()
                .to_string()
                .contains("declares 8 bytes")
        );

        let mut t = table_v1::<Fake>();
        t.swap_service = None;
        assert!(
            check(&t)
                .unwrap_err()
                .to_string()
                .ends_with("`swap_service` is null")
        );
    }

    #[test]
    fn status_names() {
        assert_eq!(status_name(STATUS_INVALID_ARGUMENT), "invalid argument");
        assert_eq!(status_name(42), "status 42");
    }
}
