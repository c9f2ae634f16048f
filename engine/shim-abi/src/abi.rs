//! The C ABI itself: the entry point, the function table and its argument
//! types. Everything here is `#[repr(C)]` and stable within ABI version 1;
//! the crate documentation states the contract these types carry.

use std::ffi::{CStr, c_void};

/// The ABI version of [`ShimTableV1`], stored in its `abi_version` field.
pub const ABI_VERSION_V1: u32 = 1;

/// The name of the symbol a version 1 shim exports.
pub const ENTRY_POINT_V1: &str = "upkeep_shim_v1";

/// [`ENTRY_POINT_V1`] as a C string, for symbol look-up.
pub const ENTRY_POINT_V1_C: &CStr = c"upkeep_shim_v1";

/// The type of the entry point: takes nothing, returns the library's static
/// function table (never freed by the caller), or null if the library
/// cannot serve this ABI version.
pub type EntryPointV1 = unsafe extern "C" fn() -> *const ShimTableV1;

/// An open shim instance, created by `open` and released by `close`. Opaque
/// to the caller.
pub type ShimHandle = *mut c_void;

/// A status code returned by every function of the table.
pub type Status = i32;

/// The call succeeded.
pub const STATUS_OK: Status = 0;
/// The operation failed (I/O, refusal by the service manager, ...); the
/// message says why.
pub const STATUS_FAILED: Status = 1;
/// An argument was rejected: null pointer, invalid UTF-8, a bad
/// configuration, a relative executable path, ...
pub const STATUS_INVALID_ARGUMENT: Status = 2;
/// `describe` only: the output did not fit; `len` of the buffer holds the
/// number of bytes needed and the caller may call again with a larger one.
pub const STATUS_BUFFER_TOO_SMALL: Status = 3;
/// The shim caught a panic (or the C++/ObjC equivalent) at its boundary. The
/// handle should be closed and not used further.
pub const STATUS_PANIC: Status = 4;

/// A caller-owned output buffer for UTF-8 text: an error message when a call
/// fails, and the description when `describe` succeeds.
///
/// The caller sets `ptr` and `cap` (and may leave `len` at 0); the shim
/// writes at most `cap` bytes at `ptr` and stores in `len` how many it
/// wrote (for [`STATUS_BUFFER_TOO_SMALL`], how many it needed). Text is
/// never NUL-terminated. An error message that does not fit is cut at a
/// character boundary. The pointer to the buffer itself may be null, in
/// which case the shim writes nothing.
#[repr(C)]
#[derive(Debug)]
pub struct ShimBuffer {
    /// Start of the caller's memory; may be null only when `cap` is 0.
    pub ptr: *mut u8,
    /// How many bytes the shim may write at `ptr`.
    pub cap: usize,
    /// Set by the shim: bytes written, or needed (see above).
    pub len: usize,
}

/// `open(config_ptr, config_len, out_handle, out)`: parse the UTF-8
/// configuration (`key=value` lines) and create an instance; on success
/// store it in `*out_handle`.
pub type OpenFn = unsafe extern "C" fn(
    config_ptr: *const u8,
    config_len: usize,
    out_handle: *mut ShimHandle,
    out: *mut ShimBuffer,
) -> Status;

/// `close(handle, out)`: release an instance. A null handle is a no-op.
pub type CloseFn = unsafe extern "C" fn(handle: ShimHandle, out: *mut ShimBuffer) -> Status;

/// `register_service` and `swap_service`: an executable path and its
/// arguments, both UTF-8 `(ptr, len)` strings. The arguments are encoded as
/// each argument followed by one NUL byte (see [`crate::args`]).
pub type ServiceFn = unsafe extern "C" fn(
    handle: ShimHandle,
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
    out: *mut ShimBuffer,
) -> Status;

/// `register_wake`: like [`ServiceFn`] with the interval between wakes in
/// whole seconds (at least 1).
pub type WakeFn = unsafe extern "C" fn(
    handle: ShimHandle,
    interval_seconds: u64,
    exe_ptr: *const u8,
    exe_len: usize,
    args_ptr: *const u8,
    args_len: usize,
    out: *mut ShimBuffer,
) -> Status;

/// `unregister_service`, `unregister_wake`, `describe`: the handle and the
/// output buffer only.
pub type HandleFn = unsafe extern "C" fn(handle: ShimHandle, out: *mut ShimBuffer) -> Status;

/// The function table of ABI version 1, returned by the entry point.
///
/// The first two fields never move in any version: a caller reads them
/// first and reads nothing else unless `abi_version` is one it knows and
/// `size` covers every field it reads. Each function pointer is nullable
/// in the type, but a loader rejects a version 1 table with a null one.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ShimTableV1 {
    /// Always [`ABI_VERSION_V1`].
    pub abi_version: u32,
    /// `size_of::<ShimTableV1>()` as the shim was compiled; a later shim may
    /// append fields and report a larger size.
    pub size: u32,
    /// Create an instance from a configuration.
    pub open: Option<OpenFn>,
    /// Release an instance.
    pub close: Option<CloseFn>,
    /// Register the engine's service, running `exe` with `args`.
    pub register_service: Option<ServiceFn>,
    /// Point every registered service at a new executable and arguments,
    /// each definition replaced atomically (used when a version activates).
    pub swap_service: Option<ServiceFn>,
    /// Remove the service. Nothing registered is not an error.
    pub unregister_service: Option<HandleFn>,
    /// Register a periodic wake running `exe` with `args`.
    pub register_wake: Option<WakeFn>,
    /// Remove the periodic wake. Nothing registered is not an error.
    pub unregister_wake: Option<HandleFn>,
    /// Write a human-readable description of what is registered.
    pub describe: Option<HandleFn>,
}

/// `size_of::<ShimTableV1>()` as a `u32`, for the table's `size` field.
pub const TABLE_V1_SIZE: u32 = {
    let size = std::mem::size_of::<ShimTableV1>();
    assert!(size <= u32::MAX as usize);
    size as u32
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_come_first() {
        assert_eq!(std::mem::offset_of!(ShimTableV1, abi_version), 0);
        assert_eq!(std::mem::offset_of!(ShimTableV1, size), 4);
        // Eight nullable function pointers after the 8-byte header.
        let ptr = std::mem::size_of::<usize>();
        assert_eq!(TABLE_V1_SIZE as usize, 8 + 8 * ptr);
        assert_eq!(std::mem::size_of::<Option<OpenFn>>(), ptr);
    }

    #[test]
    fn entry_point_names_agree() {
        assert_eq!(ENTRY_POINT_V1_C.to_str().unwrap(), ENTRY_POINT_V1);
    }
}
