//! For shim authors: implement [`ShimV1`] on a Rust type and export it with
//! [`export_shim_v1!`](crate::export_shim_v1); the FFI plumbing (reading
//! `(ptr, len)` strings, writing into the caller's buffer, boxing the
//! handle, catching panics) lives here once.
//!
//! ```
//! use std::time::Duration;
//! use upkeep_shim_abi::{ShimConfig, export::{ShimFailure, ShimV1}};
//!
//! struct Null;
//!
//! impl ShimV1 for Null {
//!     fn open(_config: &ShimConfig) -> Result<Self, ShimFailure> { Ok(Null) }
//!     fn register_service(&mut self, _exe: &str, _args: &[String]) -> Result<(), ShimFailure> { Ok(()) }
//!     fn swap_service(&mut self, _exe: &str, _args: &[String]) -> Result<(), ShimFailure> { Ok(()) }
//!     fn unregister_service(&mut self) -> Result<(), ShimFailure> { Ok(()) }
//!     fn register_wake(&mut self, _every: Duration, _exe: &str, _args: &[String]) -> Result<(), ShimFailure> { Ok(()) }
//!     fn unregister_wake(&mut self) -> Result<(), ShimFailure> { Ok(()) }
//!     fn describe(&self) -> Result<String, ShimFailure> { Ok("nothing".into()) }
//! }
//!
//! upkeep_shim_abi::export_shim_v1!(Null);
//! ```
//!
//! The helpers ([`str_arg`], [`write_message`], [`write_output`], [`guard`])
//! are public too, for a shim that builds its table by hand.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::abi::{
    ABI_VERSION_V1, STATUS_BUFFER_TOO_SMALL, STATUS_FAILED, STATUS_INVALID_ARGUMENT, STATUS_OK,
    STATUS_PANIC, ShimBuffer, ShimHandle, ShimTableV1, Status, TABLE_V1_SIZE,
};
use crate::args::decode_args;
use crate::config::ShimConfig;

/// A failed shim call as it crosses the ABI: a status and a message.
///
/// Any `std::error::Error` converts into one with [`STATUS_FAILED`], so a
/// shim can use `?` on its own error types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimFailure {
    /// The status returned to the caller (never [`STATUS_OK`]).
    pub status: Status,
    /// The message written into the caller's buffer.
    pub message: String,
}

impl ShimFailure {
    /// A failure of the operation ([`STATUS_FAILED`]).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            status: STATUS_FAILED,
            message: message.into(),
        }
    }

    /// A rejected argument or configuration ([`STATUS_INVALID_ARGUMENT`]).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self {
            status: STATUS_INVALID_ARGUMENT,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ShimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for ShimFailure {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::failed(message)
    }
}

/// What a version 1 shim implements. One value is one open handle; the
/// caller never uses a handle from two threads at once, hence `&mut self`.
pub trait ShimV1: Sized + Send + 'static {
    /// Creates an instance from the parsed configuration. Unknown or
    /// missing keys should fail with [`ShimFailure::invalid_argument`].
    fn open(config: &ShimConfig) -> Result<Self, ShimFailure>;
    /// Registers the engine's service running `exe` with `args`.
    fn register_service(&mut self, exe: &str, args: &[String]) -> Result<(), ShimFailure>;
    /// Points every registered service at `exe` with `args`.
    fn swap_service(&mut self, exe: &str, args: &[String]) -> Result<(), ShimFailure>;
    /// Removes the service; nothing registered is not an error.
    fn unregister_service(&mut self) -> Result<(), ShimFailure>;
    /// Registers a periodic wake (`every` is at least one second).
    fn register_wake(
        &mut self,
        every: Duration,
        exe: &str,
        args: &[String],
    ) -> Result<(), ShimFailure>;
    /// Removes the periodic wake; nothing registered is not an error.
    fn unregister_wake(&mut self) -> Result<(), ShimFailure>;
    /// Describes, for people, what is registered.
    fn describe(&self) -> Result<String, ShimFailure>;
}

/// Reads a `(ptr, len)` argument as UTF-8.
///
/// A null `ptr` is accepted only with `len == 0` (and reads as `""`).
///
/// # Safety
///
/// Unless null, `ptr` must point to `len` initialised bytes that stay valid
/// and unchanged for `'a`.
pub unsafe fn str_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str, ShimFailure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok("")
        } else {
            Err(ShimFailure::invalid_argument(format!(
                "{what}: null pointer with length {len}"
            )))
        };
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes for 'a.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    std::str::from_utf8(bytes)
        .map_err(|e| ShimFailure::invalid_argument(format!("{what} is not valid UTF-8: {e}")))
}

/// Writes `message` into the caller's buffer, cut at a character boundary
/// if it does not fit, and sets `len`. A null `out` (or null `ptr`) writes
/// nothing.
///
/// # Safety
///
/// Unless null, `out` must point to a valid [`ShimBuffer`] whose `ptr` (unless
/// null) is writable for `cap` bytes.
pub unsafe fn write_message(out: *mut ShimBuffer, message: &str) {
    if out.is_null() {
        return;
    }
    // SAFETY: non-null and valid per the caller's contract.
    let buf = unsafe { &mut *out };
    if buf.ptr.is_null() {
        buf.len = 0;
        return;
    }
    let mut n = message.len().min(buf.cap);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n <= cap` bytes are writable at `buf.ptr`; the source is a
    // distinct Rust string, so the ranges do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), buf.ptr, n) };
    buf.len = n;
}

/// Writes a complete output (for `describe`): [`STATUS_OK`] if it fits,
/// else [`STATUS_BUFFER_TOO_SMALL`] with `len` set to the size needed and
/// nothing written.
///
/// # Safety
///
/// As for [`write_message`].
pub unsafe fn write_output(out: *mut ShimBuffer, text: &str) -> Status {
    if out.is_null() {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: non-null and valid per the caller's contract.
    let buf = unsafe { &mut *out };
    if buf.ptr.is_null() || text.len() > buf.cap {
        buf.len = text.len();
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: `text.len() <= cap` bytes are writable at `buf.ptr`.
    unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf.ptr, text.len()) };
    buf.len = text.len();
    STATUS_OK
}

/// Runs `f`, turning a panic into a failure with [`STATUS_PANIC`] so that
/// unwinding never crosses into the caller.
pub fn catch(f: impl FnOnce() -> Result<(), ShimFailure>) -> Result<(), ShimFailure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(ShimFailure {
            status: STATUS_PANIC,
            message: format!("shim panicked: {}", panic_text(&*panic)),
        }),
    }
}

/// The status of `result`, writing a failure's message into `out`.
///
/// # Safety
///
/// As for [`write_message`].
pub unsafe fn report(out: *mut ShimBuffer, result: Result<(), ShimFailure>) -> Status {
    match result {
        Ok(()) => STATUS_OK,
        Err(failure) => {
            // SAFETY: forwarded from the caller.
            unsafe { write_message(out, &failure.message) };
            if failure.status == STATUS_OK {
                STATUS_FAILED
            } else {
                failure.status
            }
        }
    }
}

/// [`catch`] then [`report`]: runs `f` at the ABI boundary.
///
/// # Safety
///
/// As for [`write_message`].
pub unsafe fn guard(out: *mut ShimBuffer, f: impl FnOnce() -> Result<(), ShimFailure>) -> Status {
    let result = catch(f);
    // SAFETY: forwarded from the caller.
    unsafe { report(out, result) }
}

fn panic_text(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The handle as a `&mut T`, refusing null.
///
/// # Safety
///
/// A non-null `handle` must come from [`open_v1::<T>`] and not be closed,
/// and no other reference to it may be live.
unsafe fn instance<'a, T: ShimV1>(handle: ShimHandle) -> Result<&'a mut T, ShimFailure> {
    if handle.is_null() {
        return Err(ShimFailure::invalid_argument("null shim handle"));
    }
    // SAFETY: per the contract above, `handle` is a live `Box<T>` pointer used
    // by one thread at a time.
    Ok(unsafe { &mut *handle.cast::<T>() })
}

/// Reads the executable and the encoded arguments of a service call.
///
/// # Safety
///
/// Both `(ptr, len)` pairs must satisfy [`str_arg`]'s contract for the call.
unsafe fn command<'a>(
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
) -> Result<(&'a str, Vec<String>), ShimFailure> {
    // SAFETY: forwarded from the caller.
    let exe = unsafe { str_arg(exe_ptr, exe_len, "executable path") }?;
    // SAFETY: forwarded from the caller.
    let args = unsafe { str_arg(args_ptr, args_len, "arguments") }?;
    Ok((exe, decode_args(args)))
}

/// Runs a call that takes a command line (executable and encoded
/// arguments) on the instance behind `handle`, reporting into `out`.
///
/// # Safety
///
/// `handle` must be live and the pointers must satisfy the ABI contract of
/// the call (crate docs): `ptrs`/`lens` are the executable and the
/// arguments.
unsafe fn command_call<T: ShimV1>(
    handle: ShimHandle,
    ptrs: [*const u8; 2],
    lens: [usize; 2],
    out: *mut ShimBuffer,
    f: impl FnOnce(&mut T, &str, &[String]) -> Result<(), ShimFailure>,
) -> Status {
    let result = catch(|| {
        // SAFETY: a live handle, and valid strings, per the contract.
        let (shim, (exe, args)) = unsafe {
            (
                instance::<T>(handle)?,
                command(ptrs[0], lens[0], ptrs[1], lens[1])?,
            )
        };
        f(shim, exe, &args)
    });
    // SAFETY: `out` is null or a valid buffer per the contract.
    unsafe { report(out, result) }
}

/// `open` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract of `open` (crate docs).
pub unsafe extern "C" fn open_v1<T: ShimV1>(
    config_ptr: *const u8,
    config_len: usize,
    out_handle: *mut ShimHandle,
    out: *mut ShimBuffer,
) -> Status {
    let result = catch(|| {
        if out_handle.is_null() {
            return Err(ShimFailure::invalid_argument("null out_handle"));
        }
        // SAFETY: the caller passes a valid `(ptr, len)` configuration.
        let text = unsafe { str_arg(config_ptr, config_len, "configuration") }?;
        let config =
            ShimConfig::parse(text).map_err(|e| ShimFailure::invalid_argument(e.to_string()))?;
        let shim = T::open(&config)?;
        let raw: ShimHandle = Box::into_raw(Box::new(shim)).cast();
        // SAFETY: `out_handle` is non-null and writable per the contract.
        // Written last, so a failed open leaves it untouched.
        unsafe { out_handle.write(raw) };
        Ok(())
    });
    // SAFETY: `out` is null or a valid buffer per the contract.
    unsafe { report(out, result) }
}

/// `close` of the table built by [`table_v1`].
///
/// # Safety
///
/// `handle` must be null or come from [`open_v1::<T>`], and is invalid
/// afterwards.
pub unsafe extern "C" fn close_v1<T: ShimV1>(handle: ShimHandle, out: *mut ShimBuffer) -> Status {
    let result = catch(|| {
        if !handle.is_null() {
            // SAFETY: the handle is a `Box<T>` from `open_v1`, closed once.
            drop(unsafe { Box::from_raw(handle.cast::<T>()) });
        }
        Ok(())
    });
    // SAFETY: `out` is null or a valid buffer per the contract.
    unsafe { report(out, result) }
}

/// `register_service` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn register_service_v1<T: ShimV1>(
    handle: ShimHandle,
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
    out: *mut ShimBuffer,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        command_call::<T>(
            handle,
            [exe_ptr, args_ptr],
            [exe_len, args_len],
            out,
            |shim, exe, args| shim.register_service(exe, args),
        )
    }
}

/// `swap_service` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn swap_service_v1<T: ShimV1>(
    handle: ShimHandle,
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
    out: *mut ShimBuffer,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        command_call::<T>(
            handle,
            [exe_ptr, args_ptr],
            [exe_len, args_len],
            out,
            |shim, exe, args| shim.swap_service(exe, args),
        )
    }
}

/// `unregister_service` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn unregister_service_v1<T: ShimV1>(
    handle: ShimHandle,
    out: *mut ShimBuffer,
) -> Status {
    // SAFETY: a live handle per the contract.
    let result = catch(|| unsafe { instance::<T>(handle) }?.unregister_service());
    // SAFETY: `out` is null or a valid buffer per the contract.
    unsafe { report(out, result) }
}

/// `register_wake` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn register_wake_v1<T: ShimV1>(
    handle: ShimHandle,
    interval_seconds: u64,
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
    out: *mut ShimBuffer,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        command_call::<T>(
            handle,
            [exe_ptr, args_ptr],
            [exe_len, args_len],
            out,
            |shim, exe, args| {
                if interval_seconds == 0 {
                    return Err(ShimFailure::invalid_argument(
                        "the wake interval must be at least one second",
                    ));
                }
                shim.register_wake(Duration::from_secs(interval_seconds), exe, args)
            },
        )
    }
}

/// `unregister_wake` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn unregister_wake_v1<T: ShimV1>(
    handle: ShimHandle,
    out: *mut ShimBuffer,
) -> Status {
    // SAFETY: a live handle per the contract.
    let result = catch(|| unsafe { instance::<T>(handle) }?.unregister_wake());
    // SAFETY: `out` is null or a valid buffer per the contract.
    unsafe { report(out, result) }
}

/// `describe` of the table built by [`table_v1`].
///
/// # Safety
///
/// The pointers must satisfy the ABI contract (crate docs).
pub unsafe extern "C" fn describe_v1<T: ShimV1>(
    handle: ShimHandle,
    out: *mut ShimBuffer,
) -> Status {
    let mut text = String::new();
    let result = catch(|| {
        // SAFETY: a live handle per the contract.
        text = unsafe { instance::<T>(handle) }?.describe()?;
        Ok(())
    });
    match result {
        // SAFETY: `out` is null or a valid buffer per the contract.
        Ok(()) => unsafe { write_output(out, &text) },
        // SAFETY: as above.
        Err(_) => unsafe { report(out, result) },
    }
}

/// The version 1 table for `T`, for a `static` in the shim library.
pub const fn table_v1<T: ShimV1>() -> ShimTableV1 {
    ShimTableV1 {
        abi_version: ABI_VERSION_V1,
        size: TABLE_V1_SIZE,
        open: Some(open_v1::<T>),
        close: Some(close_v1::<T>),
        register_service: Some(register_service_v1::<T>),
        swap_service: Some(swap_service_v1::<T>),
        unregister_service: Some(unregister_service_v1::<T>),
        register_wake: Some(register_wake_v1::<T>),
        unregister_wake: Some(unregister_wake_v1::<T>),
        describe: Some(describe_v1::<T>),
    }
}

/// Exports `upkeep_shim_v1` from the current crate, serving the table of a
/// type implementing [`ShimV1`]. Use it once, in a `cdylib`.
#[macro_export]
macro_rules! export_shim_v1 {
    ($ty:ty) => {
        /// The upkeep shim entry point, ABI version 1.
        #[unsafe(no_mangle)]
        pub extern "C" fn upkeep_shim_v1() -> *const $crate::abi::ShimTableV1 {
            static TABLE: $crate::abi::ShimTableV1 = $crate::export::table_v1::<$ty>();
            &TABLE
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(storage: &mut [u8]) -> ShimBuffer {
        ShimBuffer {
            ptr: storage.as_mut_ptr(),
            cap: storage.len(),
            len: 0,
        }
    }

    #[test]
    fn message_is_cut_at_a_char_boundary() {
        let mut storage = [0u8; 4];
        let mut buf = buffer(&mut storage);
        // SAFETY: `buf` describes `storage`.
        unsafe { write_message(&mut buf, "ab\u{e9}\u{e9}") };
        assert_eq!(buf.len, 4);
        assert_eq!(&storage, "ab\u{e9}".as_bytes());

        let mut storage = [0u8; 3];
        let mut buf = buffer(&mut storage);
        // SAFETY: as above.
        unsafe { write_message(&mut buf, "ab\u{e9}") };
        assert_eq!(buf.len, 2);
    }

    #[test]
    fn null_buffers_are_ignored() {
        // SAFETY: null is allowed.
        unsafe { write_message(std::ptr::null_mut(), "x") };
        let mut buf = ShimBuffer {
            ptr: std::ptr::null_mut(),
            cap: 0,
            len: 7,
        };
        // SAFETY: a null `ptr` is allowed.
        unsafe { write_message(&mut buf, "x") };
        assert_eq!(buf.len, 0);
    }

    #[test]
    fn output_reports_the_size_needed() {
        let mut storage = [0u8; 3];
        let mut buf = buffer(&mut storage);
        // SAFETY: `buf` describes `storage`.
        assert_eq!(
            unsafe { write_output(&mut buf, "abcd") },
            STATUS_BUFFER_TOO_SMALL
        );
        assert_eq!(buf.len, 4);
        // SAFETY: as above.
        assert_eq!(unsafe { write_output(&mut buf, "abc") }, STATUS_OK);
        assert_eq!(&storage, b"abc");
    }

    #[test]
    fn str_arg_checks_null_and_utf8() {
        // SAFETY: null with length 0 is allowed.
        assert_eq!(unsafe { str_arg(std::ptr::null(), 0, "x") }, Ok(""));
        // SAFETY: null is checked before reading.
        let e = unsafe { str_arg(std::ptr::null(), 3, "x") }.unwrap_err();
        assert_eq!(e.status, STATUS_INVALID_ARGUMENT);
        let bad = [0xffu8, 0xfe];
        // SAFETY: `bad` is 2 readable bytes.
        let e = unsafe { str_arg(bad.as_ptr(), 2, "exe") }.unwrap_err();
        assert!(e.message.starts_with("exe is not valid UTF-8"), "{e}");
    }

    #[test]
    fn guard_maps_failures_and_panics() {
        let mut storage = [0u8; 64];
        let mut buf = buffer(&mut storage);
        // SAFETY: `buf` describes `storage`.
        let status = unsafe { guard(&mut buf, || Err(ShimFailure::invalid_argument("nope"))) };
        assert_eq!(status, STATUS_INVALID_ARGUMENT);
        assert_eq!(&storage[..buf.len], b"nope");

        let mut buf = buffer(&mut storage);
        // SAFETY: as above.
        let status = unsafe { guard(&mut buf, || panic!("boom")) };
        assert_eq!(status, STATUS_PANIC);
        assert_eq!(&storage[..buf.len], b"shim panicked: boom");
    }

    #[test]
    fn errors_convert_with_their_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let f: ShimFailure = Outer(std::io::Error::other("inner")).into();
        assert_eq!(f.status, STATUS_FAILED);
        assert_eq!(f.message, "outer: inner");
    }
}
