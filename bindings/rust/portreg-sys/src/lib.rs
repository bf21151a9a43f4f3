//! Raw declarations of `include/portreg.h`, written by hand: every type,
//! constant and function of the header, with the same names.
//!
//! These are the C contract as is: pointers, lengths and negative
//! `PORTREG_E*` return codes. Use the `portreg` crate for a safe API; the
//! header's comments are the documentation of each call.
//!
//! The `layout` test compiles a C program against the header and checks
//! that every size, alignment, field offset and constant here matches.
//!
//! ```
//! // The library linked at run time is the one these declarations describe.
//! let v = unsafe { portreg_sys::portreg_version() };
//! assert_eq!(v >> 8, portreg_sys::PORTREG_VERSION_HEX >> 8);
//! ```
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::{c_char, c_int, c_uint, c_void};
use core::marker::{PhantomData, PhantomPinned};

/// `PORTREG_VERSION_MAJOR`.
pub const PORTREG_VERSION_MAJOR: c_uint = 0;
/// `PORTREG_VERSION_MINOR`.
pub const PORTREG_VERSION_MINOR: c_uint = 3;
/// `PORTREG_VERSION_PATCH`.
pub const PORTREG_VERSION_PATCH: c_uint = 0;
/// `PORTREG_VERSION_HEX`: `0xMMmmpp` of the header these declarations follow.
pub const PORTREG_VERSION_HEX: c_uint =
    (PORTREG_VERSION_MAJOR << 16) | (PORTREG_VERSION_MINOR << 8) | PORTREG_VERSION_PATCH;

/// Longest id, in bytes.
pub const PORTREG_ID_MAX: usize = 255;

/// Success.
pub const PORTREG_OK: c_int = 0;
/// NULL registry or required out-pointer, bad id, NULL body.
pub const PORTREG_EINVAL: c_int = -1;
/// Allocation failed; the registry is unchanged.
pub const PORTREG_ENOMEM: c_int = -2;
/// The frame body is not a valid BackendHttpReady.
pub const PORTREG_EDECODE: c_int = -3;
/// Port is 0 or above 65535.
pub const PORTREG_ERANGE: c_int = -4;
/// Conditional update: the version did not match.
pub const PORTREG_ECONFLICT: c_int = -5;
/// `portreg_wait()`: no change before the timeout.
pub const PORTREG_ETIMEDOUT: c_int = -6;
/// Frame: framing version other than 1.
pub const PORTREG_EVERSION: c_int = -7;
/// Frame: declared body longer than the reader's limit.
pub const PORTREG_ETOOLARGE: c_int = -8;
/// Frame: the stream ended inside a frame.
pub const PORTREG_ETRUNCATED: c_int = -9;
/// A system call failed; `portreg_last_errno()` says why.
pub const PORTREG_ESYSTEM: c_int = -10;
/// A new id would exceed `portreg_options_t.max_ids`.
pub const PORTREG_EFULL: c_int = -11;

/// The registry (opaque; only ever behind a pointer).
#[repr(C)]
pub struct portreg_t {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `portreg_status_t`, a C enum (an `unsigned int` with these compilers).
/// Kept an integer, not a Rust enum, so that no value from C is ever invalid.
pub type portreg_status_t = c_uint;
/// Never heard of, or untracked.
pub const PORTREG_UNTRACKED: portreg_status_t = 0;
/// Tracked, no port yet.
pub const PORTREG_PENDING: portreg_status_t = 1;
/// Tracked, listening on `port`.
pub const PORTREG_BOUND: portreg_status_t = 2;

/// One backend's state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct portreg_state_t {
    pub status: portreg_status_t,
    /// 1..65535 when bound, else 0.
    pub port: u16,
    /// 0 when untracked.
    pub version: u32,
}

/// One id for [`portreg_lookup_many`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct portreg_id_t {
    pub id: *const c_char,
    pub id_len: usize,
}

/// Allocation hook; `ctx` is `alloc_ctx`.
pub type portreg_alloc_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, size: usize) -> *mut c_void>;
/// Free hook; `ctx` is `alloc_ctx`.
pub type portreg_free_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, ptr: *mut c_void, size: usize)>;

/// Creation options; fill with `portreg_options_init()` (all zero).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct portreg_options_t {
    pub initial_capacity: usize,
    pub hash_seed: u64,
    pub alloc: portreg_alloc_fn,
    pub free: portreg_free_fn,
    pub alloc_ctx: *mut c_void,
    pub no_membarrier: bool,
    pub max_ids: usize,
    pub no_reclaim_thread: bool,
    /// Must be zero.
    pub reserved: [u64; 6],
}

/// One entry of an iteration or a snapshot.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct portreg_entry_t {
    pub id: *const c_char,
    pub id_len: usize,
    pub state: portreg_state_t,
}

/// Caller-allocated iterator (private contents).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct portreg_iter_t {
    pub opaque: [u8; 96],
}

/// A copy-out snapshot; free with `portreg_snapshot_free()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct portreg_snapshot_t {
    pub count: usize,
    pub entries: *mut portreg_entry_t,
}

/// `portreg_stats()` output.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct portreg_stats_t {
    pub tracked: usize,
    pub slots: usize,
    pub table_capacity: usize,
    pub bytes: usize,
    pub compactions: u64,
    pub changes: u64,
    pub probe_max: usize,
    pub reseeds: u64,
    pub deferred_bytes: usize,
    /// Zero; room for later statistics.
    pub reserved: [u64; 5],
}

/// An open handle on one id (opaque; only ever behind a pointer).
#[repr(C)]
pub struct portreg_handle_t {
    _private: [u8; 0],
    _not_send_sync_unpin: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Largest encoded BackendHttpReady body.
pub const PORTREG_READY_MAX_SIZE: usize = 6;

/// The only framing version.
pub const PORTREG_FRAME_VERSION: u8 = 1;
/// Version byte plus the 32-bit length.
pub const PORTREG_FRAME_HEADER_SIZE: usize = 5;
/// Largest body a frame reader accepts (and the default limit).
pub const PORTREG_FRAME_MAX_BODY: usize = 16 * 1024 * 1024;

/// Caller-allocated frame reader (private contents).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct portreg_frame_reader_t {
    pub opaque: [u8; 64],
}

extern "C" {
    pub fn portreg_version() -> c_uint;
    pub fn portreg_version_string() -> *const c_char;
    pub fn portreg_strerror(code: c_int) -> *const c_char;
    pub fn portreg_err_name(code: c_int) -> *const c_char;
    pub fn portreg_options_init(opts: *mut portreg_options_t);
    pub fn portreg_create(opts: *const portreg_options_t) -> *mut portreg_t;
    pub fn portreg_destroy(reg: *mut portreg_t);
    pub fn portreg_thread_attach(reg: *mut portreg_t) -> c_int;

    pub fn portreg_track(reg: *mut portreg_t, id: *const c_char, id_len: usize) -> c_int;
    pub fn portreg_register(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        port: u16,
        prev: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_lookup(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        port: *mut u16,
    ) -> bool;
    pub fn portreg_lookup_many(
        reg: *mut portreg_t,
        ids: *const portreg_id_t,
        n: usize,
        ports: *mut u16,
    ) -> isize;
    pub fn portreg_get(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        state: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_untrack(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        prev: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_unbind(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        prev: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_register_if(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        port: u16,
        expected_version: u32,
        prev: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_untrack_if(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        expected_version: u32,
        prev: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_count(reg: *mut portreg_t) -> usize;

    pub fn portreg_decode_and_register(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        body: *const u8,
        body_len: usize,
        port: *mut u16,
    ) -> c_int;
    pub fn portreg_decode_port(body: *const u8, body_len: usize, port: *mut u16) -> c_int;
    pub fn portreg_decode_ready(body: *const u8, body_len: usize, value: *mut u32) -> c_int;
    pub fn portreg_encode_ready(port: u32, buf: *mut u8, cap: usize) -> c_int;

    pub fn portreg_iter_init(it: *mut portreg_iter_t, reg: *mut portreg_t);
    pub fn portreg_iter_next(it: *mut portreg_iter_t, entry: *mut portreg_entry_t) -> bool;
    pub fn portreg_iter_fini(it: *mut portreg_iter_t);

    pub fn portreg_snapshot(reg: *mut portreg_t, snap: *mut portreg_snapshot_t) -> c_int;
    pub fn portreg_snapshot_free(snap: *mut portreg_snapshot_t);

    pub fn portreg_wait(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        seen_version: u32,
        timeout_ns: i64,
        state: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_changes(reg: *mut portreg_t) -> u64;
    pub fn portreg_eventfd(reg: *mut portreg_t) -> c_int;

    pub fn portreg_stats(reg: *mut portreg_t, stats: *mut portreg_stats_t) -> c_int;
    pub fn portreg_reclaim(reg: *mut portreg_t) -> c_int;

    pub fn portreg_handle_open(
        reg: *mut portreg_t,
        id: *const c_char,
        id_len: usize,
        out: *mut *mut portreg_handle_t,
    ) -> c_int;
    pub fn portreg_handle_lookup(h: *const portreg_handle_t, port: *mut u16) -> bool;
    pub fn portreg_handle_get(h: *const portreg_handle_t, state: *mut portreg_state_t) -> c_int;
    pub fn portreg_handle_wait(
        h: *const portreg_handle_t,
        seen_version: u32,
        timeout_ns: i64,
        state: *mut portreg_state_t,
    ) -> c_int;
    pub fn portreg_handle_id(h: *const portreg_handle_t, id_len: *mut usize) -> *const c_char;
    pub fn portreg_handle_close(h: *mut portreg_handle_t);

    pub fn portreg_last_errno() -> c_int;

    pub fn portreg_frame_reader_init(fr: *mut portreg_frame_reader_t, max_body: usize);
    pub fn portreg_frame_feed(
        fr: *mut portreg_frame_reader_t,
        data: *const u8,
        len: usize,
        consumed: *mut usize,
        body: *mut *const u8,
        body_len: *mut usize,
    ) -> c_int;
    pub fn portreg_frame_finish(fr: *const portreg_frame_reader_t) -> c_int;
    pub fn portreg_frame_reader_fini(fr: *mut portreg_frame_reader_t);
}
