//! A safe Rust API for **portreg**, the lock-free registry that tells a
//! broker where each backend daemon's HTTP server listens.
//!
//! For every backend id a [`Registry`] holds one of three [`State`]s —
//! untracked, pending (known, no port yet) or bound to a port — plus a
//! version that grows with every change. Lookups are wait-free and may run
//! on any number of threads at once; share the registry with an
//! [`Arc`] or a reference.
//!
//! ```
//! use portreg::{Registry, State};
//!
//! let reg = Registry::new()?;
//! reg.track("zccache")?;                         // a daemon connected
//! assert_eq!(reg.get("zccache")?.state, State::Pending);
//! reg.register("zccache", 49152)?;               // it reported its port
//! assert_eq!(reg.lookup("zccache"), Some(49152)); // every request does this
//! # Ok::<(), portreg::Error>(())
//! ```
//!
//! [`compat::HttpEndpointRegistry`] is a drop-in replacement for the
//! `Mutex<HashMap<String, Option<u16>>>` registry this library was designed
//! after, and takes any `String` as an id. A [`Registry`]'s ids are byte
//! strings of 1..=[`ID_MAX`] bytes (`&str`, `&[u8]`, `String`, … anything
//! `AsRef<[u8]>`); every method given an id of another length, from the
//! empty one to megabytes, returns [`Error::Invalid`] (`lookup`: `None`)
//! and changes nothing, after looking at the length only. Nothing in this
//! crate panics on an id. Ports are 1..=65535.
//!
//! # Leaks
//!
//! Forgetting a value (`std::mem::forget`, an `Rc` cycle, `Box::leak`) is
//! safe: it leaks, it never aborts or corrupts anything. A [`Handle`] and
//! an [`Iter`] each share the ownership of the C registry with their
//! [`Registry`], which is destroyed when the last of them is dropped. A
//! forgotten one therefore leaks the whole registry: its table, slots and
//! ids, the memory waiting for reclamation, its eventfd (one file
//! descriptor), its reclaim thread if it started one (asleep for the rest
//! of the process), and its registry number (numbers of live registries
//! are not reused, and each thread's array of links to registries grows
//! with the highest number it uses). Besides:
//!
//! - a forgotten [`Handle`] keeps its id's slot in the table for as long
//!   as the registry lives: never compacted away, counted by
//!   [`Options::max_ids`];
//! - a forgotten [`Iter`] keeps its thread inside an epoch section until
//!   that thread exits: memory deferred meanwhile is not freed before then
//!   ([`Stats::deferred_bytes`] grows with churn), [`Registry::reclaim`]
//!   returns [`Error::Invalid`] on that thread, and on any other waits
//!   for that thread's exit if anything was deferred.
//!
//! A forgotten [`FrameReader`] leaks its buffer and nothing else;
//! snapshots are copies and waits are calls, so there is nothing to forget.
//!
//! Every `unsafe` block of this crate is a call into `portreg-sys`; the
//! README of `bindings/rust` gives the argument for each.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::multiple_unsafe_ops_per_block)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use portreg_sys as sys;

pub mod compat;
mod error;
mod frame;
mod handle;

pub use error::Error;
use error::{check, static_str};
pub use frame::FrameReader;
pub use handle::Handle;

/// Longest id, in bytes.
///
/// ```
/// let reg = portreg::Registry::new()?;
/// assert!(reg.track(vec![b'x'; portreg::ID_MAX]).is_ok());
/// assert_eq!(reg.track(vec![b'x'; portreg::ID_MAX + 1]), Err(portreg::Error::Invalid));
/// # Ok::<(), portreg::Error>(())
/// ```
pub const ID_MAX: usize = sys::PORTREG_ID_MAX;

/// The run-time version of the linked C library, `0xMMmmpp`.
///
/// ```
/// assert!(portreg::version() >= 0x000300);
/// ```
pub fn version() -> u32 {
    // SAFETY: no arguments, no state.
    unsafe { sys::portreg_version() }
}

/// The run-time version of the linked C library as text, `"0.3.0"`.
///
/// ```
/// assert!(portreg::version_string().starts_with("0."));
/// ```
pub fn version_string() -> &'static str {
    // SAFETY: returns a static NUL-terminated string, never NULL.
    static_str(unsafe { sys::portreg_version_string() })
}

/// A backend's state.
///
/// ```
/// use portreg::State;
/// assert_eq!(State::Bound(8002).port(), Some(8002));
/// assert_eq!(State::Pending.port(), None);
/// assert!(State::Pending.is_tracked() && !State::Untracked.is_tracked());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Never heard of, or untracked.
    Untracked,
    /// Tracked, no port reported yet.
    Pending,
    /// Tracked; its HTTP server listens on `127.0.0.1:port` (1..=65535).
    Bound(u16),
}

impl State {
    /// The port, iff bound.
    ///
    /// ```
    /// assert_eq!(portreg::State::Bound(1).port(), Some(1));
    /// ```
    pub fn port(self) -> Option<u16> {
        match self {
            State::Bound(port) => Some(port),
            _ => None,
        }
    }

    /// Pending or bound.
    ///
    /// ```
    /// assert!(portreg::State::Bound(1).is_tracked());
    /// ```
    pub fn is_tracked(self) -> bool {
        self != State::Untracked
    }
}

/// A state and its version. Every applied change gives a backend a version
/// greater than any it had before in this registry, also across untrack and
/// re-track; an untracked backend reads as version 0.
///
/// ```
/// let reg = portreg::Registry::new()?;
/// assert_eq!(reg.get("fbuild")?.version, 0);   // untracked
/// reg.track("fbuild")?;
/// let pending = reg.get("fbuild")?;
/// let prev = reg.register("fbuild", 8002)?;    // returns the state it replaced
/// assert_eq!(prev, pending);
/// assert!(reg.get("fbuild")?.version > pending.version);
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Versioned {
    /// The state.
    pub state: State,
    /// Its version; 0 exactly when untracked.
    pub version: u32,
}

impl Versioned {
    /// The untracked state, version 0.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.get("nobody")?, portreg::Versioned::UNTRACKED);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub const UNTRACKED: Versioned = Versioned { state: State::Untracked, version: 0 };

    pub(crate) fn from_raw(raw: sys::portreg_state_t) -> Versioned {
        let state = match raw.status {
            sys::PORTREG_BOUND => State::Bound(raw.port),
            sys::PORTREG_PENDING => State::Pending,
            _ => State::Untracked,
        };
        Versioned { state, version: raw.version }
    }
}

/// How to create a [`Registry`]; every field defaults to the C library's
/// default. (The C allocator hooks are not offered: the registry allocates
/// with `malloc`.)
///
/// ```
/// let opts = portreg::Options::new().initial_capacity(1024).max_ids(10_000);
/// let reg = portreg::Registry::with_options(&opts)?;
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    initial_capacity: usize,
    hash_seed: u64,
    no_membarrier: bool,
    max_ids: usize,
    no_reclaim_thread: bool,
}

impl Options {
    /// The defaults.
    ///
    /// ```
    /// assert_eq!(portreg::Options::new(), portreg::Options::default());
    /// ```
    pub fn new() -> Options {
        Options::default()
    }

    /// Ids the table holds before its first grow (rounded up; 0: 64).
    ///
    /// ```
    /// let reg = portreg::Registry::with_options(&portreg::Options::new().initial_capacity(4096))?;
    /// assert!(reg.stats()?.table_capacity >= 4096);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn initial_capacity(mut self, ids: usize) -> Options {
        self.initial_capacity = ids;
        self
    }

    /// Seed for the id hash (0: a random seed at creation).
    ///
    /// ```
    /// let opts = portreg::Options::new().hash_seed(0x5eed);
    /// # let _ = portreg::Registry::with_options(&opts)?;
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn hash_seed(mut self, seed: u64) -> Options {
        self.hash_seed = seed;
        self
    }

    /// `true`: readers enter their epoch section with an atomic exchange and
    /// no other core is ever interrupted; `false` (default): plain stores
    /// where the kernel offers `membarrier(2)`.
    ///
    /// ```
    /// let opts = portreg::Options::new().no_membarrier(true);
    /// # let _ = portreg::Registry::with_options(&opts)?;
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn no_membarrier(mut self, yes: bool) -> Options {
        self.no_membarrier = yes;
        self
    }

    /// Most ids the table may hold at once (tracked ids, untracked ones not
    /// yet compacted away, wait placeholders, ids held by handles); a new id
    /// beyond it fails with [`Error::Full`]. 0 (default): no limit.
    ///
    /// ```
    /// let reg = portreg::Registry::with_options(&portreg::Options::new().max_ids(1))?;
    /// reg.track("a")?;
    /// assert_eq!(reg.track("b"), Err(portreg::Error::Full));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn max_ids(mut self, ids: usize) -> Options {
        self.max_ids = ids;
        self
    }

    /// `true`: no helper thread frees deferred memory; later writer calls
    /// and [`Registry::reclaim`] do. `false` (default): a helper thread,
    /// started the first time memory is deferred.
    ///
    /// ```
    /// let opts = portreg::Options::new().no_reclaim_thread(true);
    /// # let _ = portreg::Registry::with_options(&opts)?;
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn no_reclaim_thread(mut self, yes: bool) -> Options {
        self.no_reclaim_thread = yes;
        self
    }
}

/// Statistics, approximate under concurrent writers.
///
/// ```
/// let reg = portreg::Registry::new()?;
/// reg.track("a")?;
/// let stats = reg.stats()?;
/// assert_eq!(stats.tracked, 1);
/// assert_eq!(stats.changes, reg.changes());
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tracked backends, as [`Registry::count`].
    pub tracked: usize,
    /// Ids the table holds, untracked placeholders included.
    pub slots: usize,
    /// Buckets in the hash table.
    pub table_capacity: usize,
    /// Table, slots and ids, excluding allocator overhead.
    pub bytes: usize,
    /// Rebuilds that dropped untracked ids.
    pub compactions: u64,
    /// Changes applied so far, as [`Registry::changes`].
    pub changes: u64,
    /// Longest probe sequence of the current table.
    pub probe_max: usize,
    /// Rebuilds with a fresh hash seed.
    pub reseeds: u64,
    /// The part of `bytes` waiting for a grace period.
    pub deferred_bytes: usize,
}

/// One tracked backend, copied out by [`Registry::snapshot`].
///
/// ```
/// let reg = portreg::Registry::new()?;
/// reg.register("fbuild", 8002)?;
/// let snap = reg.snapshot()?;
/// assert_eq!(snap[0].id, b"fbuild");
/// assert_eq!(snap[0].state.state, portreg::State::Bound(8002));
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotEntry {
    /// The id's bytes.
    pub id: Vec<u8>,
    /// Its state and version.
    pub state: Versioned,
}

/// One tracked backend seen by an [`Iter`]; the id borrows the iteration.
///
/// ```
/// let reg = portreg::Registry::new()?;
/// reg.track("zccache")?;
/// for entry in &reg.iter() {
///     assert_eq!(entry.id, b"zccache");
///     assert_eq!(entry.state.state, portreg::State::Pending);
/// }
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry<'it> {
    /// The id's bytes, inside the registry; valid while the iteration lasts.
    pub id: &'it [u8],
    /// Its state and version.
    pub state: Versioned,
}

/// The registry. `Send + Sync`: every method takes `&self` and may run on
/// any number of threads at once (share it with an `Arc`); dropping it frees
/// everything (unless a [`Handle`] or an [`Iter`] of it was forgotten: see
/// [Leaks](crate#leaks)).
///
/// Ids are 1..=[`ID_MAX`] bytes: each method refuses any other length with
/// [`Error::Invalid`] (`lookup` answers `None`), never with a panic.
///
/// Lookups ([`lookup`](Registry::lookup), [`get`](Registry::get)) are
/// wait-free; state changes of known ids are one compare-and-swap
/// (lock-free); inserting a new id takes a writer lock that readers never
/// wait for.
///
/// # Dropping
/// The last reference may go away on any thread, also while other threads
/// that used the registry are exiting: the C library lets a thread's exit
/// overlap the destroy (it hands its epoch record back through a link of
/// its own that outlives the registry).
///
/// ```
/// use std::sync::Arc;
/// let reg = Arc::new(portreg::Registry::new()?);
/// let reader = {
///     let reg = Arc::clone(&reg);
///     std::thread::spawn(move || reg.lookup("zccache"))
/// };
/// reader.join().unwrap();
/// # Ok::<(), portreg::Error>(())
/// ```
pub struct Registry {
    // The same pointer as owner.0, kept here so that a lookup reaches the C
    // registry in one load.
    raw: NonNull<sys::portreg_t>,
    owner: Arc<Owner>,
}

// SAFETY: the C library allows every call except create/destroy from any
// number of threads at once with no per-thread setup; destroy runs only in
// Owner's Drop, after every Registry, Iter and Handle of it is gone.
unsafe impl Send for Registry {}
// SAFETY: as above; every method takes &self and maps to a thread-safe call.
unsafe impl Sync for Registry {}

/// Owns the C registry: `portreg_destroy` runs when the last `Arc` goes.
/// The [`Registry`] holds one, and so does every [`Iter`] and [`Handle`]
/// (C objects that must be finished before destroy), so a forgotten one
/// leaks the registry instead of destroying it under an open handle or
/// iteration.
pub(crate) struct Owner(NonNull<sys::portreg_t>);

// SAFETY: the only use of the pointer is portreg_destroy in Drop, which
// runs once, on whichever thread drops the last Arc, after every other
// holder is gone (Arc's release/acquire on the count orders their calls
// before it); the C library allows destroy from any thread.
unsafe impl Send for Owner {}
// SAFETY: &Owner gives no access to the pointer.
unsafe impl Sync for Owner {}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: the pointer came from portreg_create and is destroyed
        // exactly once, here; no Registry, Iter or Handle is left (each
        // holds an Arc to this Owner), so no call runs or can start, no
        // handle is open and no iteration of it is in progress. Threads
        // that used it may be exiting right now: the C library allows that.
        unsafe { sys::portreg_destroy(self.0.as_ptr()) }
    }
}

/// A zeroed C state, for out-parameters.
fn raw_state() -> sys::portreg_state_t {
    sys::portreg_state_t::default()
}

fn timeout_ns(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX)
}

impl Registry {
    /// An empty registry with the default [`Options`].
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.count(), 0);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn new() -> Result<Registry, Error> {
        Registry::with_options(&Options::default())
    }

    /// An empty registry with these options.
    ///
    /// ```
    /// let reg = portreg::Registry::with_options(&portreg::Options::new().max_ids(100))?;
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn with_options(opts: &Options) -> Result<Registry, Error> {
        // SAFETY: all zero bytes is a valid portreg_options_t: integers 0,
        // bools false, a NULL pointer, `None` hooks.
        let mut raw_opts: sys::portreg_options_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid, writable options struct that the call fills in.
        unsafe { sys::portreg_options_init(&mut raw_opts) };
        raw_opts.initial_capacity = opts.initial_capacity;
        raw_opts.hash_seed = opts.hash_seed;
        raw_opts.no_membarrier = opts.no_membarrier;
        raw_opts.max_ids = opts.max_ids;
        raw_opts.no_reclaim_thread = opts.no_reclaim_thread;
        // SAFETY: raw_opts is a valid, initialized options struct that the
        // call only reads; allocator hooks are NULL (malloc/free).
        let raw = unsafe { sys::portreg_create(&raw_opts) };
        match NonNull::new(raw) {
            Some(raw) => Ok(Registry { raw, owner: Arc::new(Owner(raw)) }),
            None => Err(match std::io::Error::last_os_error().raw_os_error() {
                Some(22) => Error::Invalid,
                Some(12) => Error::NoMem,
                Some(errno) => Error::System(errno),
                None => Error::NoMem,
            }),
        }
    }

    fn raw(&self) -> *mut sys::portreg_t {
        self.raw.as_ptr()
    }

    /// Sets up the calling thread's per-thread record now rather than on
    /// its first call (which would then fail lookups for lack of memory).
    /// Optional.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.thread_attach()?;
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn thread_attach(&self) -> Result<(), Error> {
        // SAFETY: [R] self.raw() is a live registry for the whole
        // call because &self borrows it.
        check(unsafe { sys::portreg_thread_attach(self.raw()) })
    }

    /// Untracked → pending; a tracked backend keeps its state and version.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.track("zccache")?;
    /// assert_eq!(reg.get("zccache")?.state, portreg::State::Pending);
    /// assert_eq!(reg.track(""), Err(portreg::Error::Invalid));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn track(&self, id: impl AsRef<[u8]>) -> Result<(), Error> {
        let id = id.as_ref();
        // SAFETY: [R+I] live registry; id.as_ptr()/id.len() describe
        // a readable byte slice for the whole call, which the C side copies.
        check(unsafe { sys::portreg_track(self.raw(), id.as_ptr().cast(), id.len()) })
    }

    /// Any state → bound to `port`, inserting the id if untracked. Returns
    /// the state it replaced. Port 0 is [`Error::Range`].
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("fbuild", 8001)?;
    /// let prev = reg.register("fbuild", 8002)?;
    /// assert_eq!(prev.state, portreg::State::Bound(8001));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn register(&self, id: impl AsRef<[u8]>, port: u16) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut prev = raw_state();
        // SAFETY: [R+I+O] as track; &mut prev is a valid, writable
        // portreg_state_t for the call.
        check(unsafe {
            sys::portreg_register(self.raw(), id.as_ptr().cast(), id.len(), port, &mut prev)
        })?;
        Ok(Versioned::from_raw(prev))
    }

    /// Like [`register`](Registry::register), applied only if the backend's
    /// version still equals `expected_version` (0: only if untracked);
    /// otherwise [`Error::Conflict`] and nothing changes.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register_if("zccache", 49152, 0)?;           // it was untracked
    /// let seen = reg.get("zccache")?.version;
    /// reg.register("zccache", 49153)?;                 // someone else changed it
    /// assert_eq!(reg.register_if("zccache", 1, seen), Err(portreg::Error::Conflict));
    /// assert_eq!(reg.lookup("zccache"), Some(49153));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn register_if(
        &self,
        id: impl AsRef<[u8]>,
        port: u16,
        expected_version: u32,
    ) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut prev = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe {
            sys::portreg_register_if(
                self.raw(),
                id.as_ptr().cast(),
                id.len(),
                port,
                expected_version,
                &mut prev,
            )
        })?;
        Ok(Versioned::from_raw(prev))
    }

    /// Bound → pending (the backend's HTTP server went away); pending and
    /// untracked ids are left as they are. Returns the previous state.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("fbuild", 8002)?;
    /// reg.unbind("fbuild")?;
    /// assert_eq!(reg.get("fbuild")?.state, portreg::State::Pending);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn unbind(&self, id: impl AsRef<[u8]>) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut prev = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe { sys::portreg_unbind(self.raw(), id.as_ptr().cast(), id.len(), &mut prev) })?;
        Ok(Versioned::from_raw(prev))
    }

    /// Any state → untracked (idempotent). Returns the previous state.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("fbuild", 8002)?;
    /// assert_eq!(reg.untrack("fbuild")?.state, portreg::State::Bound(8002));
    /// assert_eq!(reg.untrack("fbuild")?.state, portreg::State::Untracked);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn untrack(&self, id: impl AsRef<[u8]>) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut prev = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe {
            sys::portreg_untrack(self.raw(), id.as_ptr().cast(), id.len(), &mut prev)
        })?;
        Ok(Versioned::from_raw(prev))
    }

    /// Like [`untrack`](Registry::untrack), applied only if the version
    /// still equals `expected_version`; otherwise [`Error::Conflict`].
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("fbuild", 8002)?;
    /// let v = reg.get("fbuild")?.version;
    /// assert_eq!(reg.untrack_if("fbuild", v + 1), Err(portreg::Error::Conflict));
    /// reg.untrack_if("fbuild", v)?;
    /// assert_eq!(reg.lookup("fbuild"), None);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn untrack_if(
        &self,
        id: impl AsRef<[u8]>,
        expected_version: u32,
    ) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut prev = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe {
            sys::portreg_untrack_if(
                self.raw(),
                id.as_ptr().cast(),
                id.len(),
                expected_version,
                &mut prev,
            )
        })?;
        Ok(Versioned::from_raw(prev))
    }

    /// The port, iff the backend is bound. `None` also for an invalid id.
    /// Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.lookup("zccache"), None);
    /// reg.register("zccache", 49152)?;
    /// assert_eq!(reg.lookup("zccache"), Some(49152));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn lookup(&self, id: impl AsRef<[u8]>) -> Option<u16> {
        let id = id.as_ref();
        let mut port = 0u16;
        // SAFETY: [R+I+O] live registry, readable id slice, &mut
        // port a valid u16 out-pointer.
        let bound =
            unsafe { sys::portreg_lookup(self.raw(), id.as_ptr().cast(), id.len(), &mut port) };
        bound.then_some(port)
    }

    /// Looks up every id of `ids` at once: `ports[i]` becomes the port of
    /// `ids[i]` if it is bound, else 0 (no bound backend has port 0);
    /// returns how many are bound. Per id exactly what
    /// [`lookup`](Self::lookup) answers, invalid ids included (0); each
    /// answer is a state that id had at some instant during the call
    /// (not a snapshot of all). The C library overlaps the lookups' cache
    /// misses, so a large registry answers many ids faster than one call
    /// each. `Err(Error::Invalid)` if `ports` is shorter than `ids`
    /// (nothing written); `Err(Error::NoMem)` if the thread's first-call
    /// setup fails. Wait-free; no allocation.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("cache", 49152)?;
    /// let mut ports = [0u16; 2];
    /// assert_eq!(reg.lookup_many(&["cache", "search"], &mut ports)?, 1);
    /// assert_eq!(ports, [49152, 0]);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn lookup_many<I: AsRef<[u8]>>(
        &self,
        ids: &[I],
        ports: &mut [u16],
    ) -> Result<usize, Error> {
        if ports.len() < ids.len() {
            return Err(Error::Invalid);
        }
        // The C call takes an array of (pointer, length): built on the
        // stack, a chunk at a time.
        const CHUNK: usize = 64;
        let mut raw = [sys::portreg_id_t { id: std::ptr::null(), id_len: 0 }; CHUNK];
        let mut bound = 0usize;
        for (chunk, out) in ids.chunks(CHUNK).zip(ports.chunks_mut(CHUNK)) {
            for (r, id) in raw.iter_mut().zip(chunk) {
                let id = id.as_ref();
                *r = sys::portreg_id_t { id: id.as_ptr().cast(), id_len: id.len() };
            }
            // SAFETY: [R] live registry; raw[..chunk.len()] describe
            // readable id slices that outlive the call; out has at least
            // chunk.len() writable u16s (ports.len() >= ids.len()).
            let n = unsafe {
                sys::portreg_lookup_many(self.raw(), raw.as_ptr(), chunk.len(), out.as_mut_ptr())
            };
            if n < 0 {
                return Err(Error::from_code(n as i32));
            }
            bound += n as usize;
        }
        Ok(bound)
    }

    /// The backend's whole state and version. Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.get("x")?, portreg::Versioned::UNTRACKED);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn get(&self, id: impl AsRef<[u8]>) -> Result<Versioned, Error> {
        let id = id.as_ref();
        let mut state = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe { sys::portreg_get(self.raw(), id.as_ptr().cast(), id.len(), &mut state) })?;
        Ok(Versioned::from_raw(state))
    }

    /// Tracked backends (exact when no writer runs). Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.track("a")?;
    /// reg.register("b", 1)?;
    /// assert_eq!(reg.count(), 2);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn count(&self) -> usize {
        // SAFETY: [R] see the README, Safety.
        unsafe { sys::portreg_count(self.raw()) }
    }

    /// Decodes `body` (the bytes inside the wire framing) as a
    /// `BackendHttpReady` and registers its port; returns the port. On any
    /// error the registry is exactly as it was: [`Error::Decode`] for a
    /// malformed body, [`Error::Range`] for port 0 (also the empty body) or
    /// above 65535.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let body = portreg::encode_ready(49152);
    /// assert_eq!(reg.decode_and_register("zccache", &body)?, 49152);
    /// assert_eq!(reg.decode_and_register("zccache", &[0xff; 8]), Err(portreg::Error::Decode));
    /// assert_eq!(reg.lookup("zccache"), Some(49152));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn decode_and_register(&self, id: impl AsRef<[u8]>, body: &[u8]) -> Result<u16, Error> {
        let id = id.as_ref();
        let mut port = 0u16;
        // SAFETY: [R+I+O] as register; body.as_ptr()/len describe a
        // readable byte slice (non-NULL even when empty).
        check(unsafe {
            sys::portreg_decode_and_register(
                self.raw(),
                id.as_ptr().cast(),
                id.len(),
                body.as_ptr(),
                body.len(),
                &mut port,
            )
        })?;
        Ok(port)
    }

    /// Starts a walk over every tracked backend: iterate over `&reg.iter()`.
    /// Weakly consistent (every backend tracked for the whole walk shows
    /// exactly once, no id twice, each state one it really had) and blocks
    /// nobody, but it holds back memory reclamation until the [`Iter`] is
    /// dropped: keep it short.
    ///
    /// The entries borrow the `Iter`, so none can be used after it is gone:
    ///
    /// ```compile_fail,E0716
    /// let reg = portreg::Registry::new().unwrap();
    /// let ids: Vec<&[u8]> = reg.iter().into_iter().map(|e| e.id).collect(); // Iter dropped here
    /// println!("{:?}", ids);
    /// ```
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.track("a")?;
    /// reg.register("b", 2)?;
    /// let mut ids: Vec<Vec<u8>> = (&reg.iter()).into_iter().map(|e| e.id.to_vec()).collect();
    /// ids.sort();
    /// assert_eq!(ids, [b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        let it = Box::new(UnsafeCell::new(sys::portreg_iter_t { opaque: [0; 96] }));
        // SAFETY: [R] live registry; it.get() points to a writable
        // iterator struct at a stable heap address that outlives the walk
        // (fini runs in Iter's Drop, before the Box is freed).
        unsafe { sys::portreg_iter_init(it.get(), self.raw()) };
        Iter { it, _owner: self.owner(), _reg: PhantomData, _one_thread: PhantomData }
    }

    /// A sorted (bytewise) copy of every tracked backend, with the same
    /// guarantees as [`iter`](Registry::iter).
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.track("zccache")?;
    /// reg.register("fbuild", 8002)?;
    /// let ids: Vec<_> = reg.snapshot()?.into_iter().map(|e| e.id).collect();
    /// assert_eq!(ids, [b"fbuild".to_vec(), b"zccache".to_vec()]);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn snapshot(&self) -> Result<Vec<SnapshotEntry>, Error> {
        let mut snap = sys::portreg_snapshot_t { count: 0, entries: std::ptr::null_mut() };
        // SAFETY: [R+O] live registry; &mut snap is writable.
        check(unsafe { sys::portreg_snapshot(self.raw(), &mut snap) })?;
        let entries = if snap.count == 0 {
            &[][..]
        } else {
            // SAFETY: on success the C side set entries to an array of count
            // initialized entries that stays valid until snapshot_free.
            unsafe { std::slice::from_raw_parts(snap.entries, snap.count) }
        };
        let out = entries
            .iter()
            .map(|e| SnapshotEntry {
                // SAFETY: each id points to id_len readable bytes owned by
                // the snapshot (id_len >= 1, never NULL), valid until free.
                id: unsafe { std::slice::from_raw_parts(e.id.cast::<u8>(), e.id_len) }.to_vec(),
                state: Versioned::from_raw(e.state),
            })
            .collect();
        // SAFETY: snap came from portreg_snapshot and is freed exactly once;
        // nothing borrowed from it outlives this line (ids were copied).
        unsafe { sys::portreg_snapshot_free(&mut snap) };
        Ok(out)
    }

    /// Blocks until the backend's version differs from `seen_version` (0:
    /// untracked), then returns its state; at once if it already differs.
    /// [`Error::TimedOut`] after `timeout`. Sleeps on a futex: no polling.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// let reg = Arc::new(portreg::Registry::new()?);
    /// let daemon = {
    ///     let reg = Arc::clone(&reg);
    ///     std::thread::spawn(move || reg.register("zccache", 49152).map(|_| ()))
    /// };
    /// let now = reg.wait("zccache", 0, Duration::from_secs(60))?;  // woken by the register
    /// assert_ne!(now.version, 0);
    /// daemon.join().unwrap()?;
    /// assert_eq!(reg.wait("other", 0, Duration::from_millis(1)), Err(portreg::Error::TimedOut));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn wait(
        &self,
        id: impl AsRef<[u8]>,
        seen_version: u32,
        timeout: Duration,
    ) -> Result<Versioned, Error> {
        self.wait_ns(id.as_ref(), seen_version, timeout_ns(timeout))
    }

    /// [`wait`](Registry::wait) with no timeout.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.track("zccache")?;
    /// // Returns at once: the version already differs from 0.
    /// assert_eq!(reg.wait_forever("zccache", 0)?.state, portreg::State::Pending);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn wait_forever(
        &self,
        id: impl AsRef<[u8]>,
        seen_version: u32,
    ) -> Result<Versioned, Error> {
        self.wait_ns(id.as_ref(), seen_version, -1)
    }

    fn wait_ns(&self, id: &[u8], seen_version: u32, ns: i64) -> Result<Versioned, Error> {
        let mut state = raw_state();
        // SAFETY: [R+I+O] as register.
        check(unsafe {
            sys::portreg_wait(
                self.raw(),
                id.as_ptr().cast(),
                id.len(),
                seen_version,
                ns,
                &mut state,
            )
        })?;
        Ok(Versioned::from_raw(state))
    }

    /// Changes applied to the registry so far. Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let before = reg.changes();
    /// reg.track("a")?;
    /// assert!(reg.changes() > before);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn changes(&self) -> u64 {
        // SAFETY: [R] see the README, Safety.
        unsafe { sys::portreg_changes(self.raw()) }
    }

    /// An eventfd (non-blocking, close-on-exec) that becomes readable after
    /// any change, for event loops: read its 8 bytes to re-arm, then compare
    /// [`changes`](Registry::changes) with the value seen last. The registry
    /// owns it (the same fd on every call), so it is lent, not given.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let reg = portreg::Registry::new()?;
    /// let fd = reg.eventfd()?;
    /// assert_eq!(fd.as_raw_fd(), reg.eventfd()?.as_raw_fd());
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn eventfd(&self) -> Result<BorrowedFd<'_>, Error> {
        // SAFETY: [R] see the README, Safety.
        let fd = unsafe { sys::portreg_eventfd(self.raw()) };
        check(fd)?;
        // SAFETY: the fd stays open until portreg_destroy, which cannot run
        // while the returned BorrowedFd borrows self.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Statistics, for tests and capacity planning. Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.stats()?.tracked, 0);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut s = sys::portreg_stats_t::default();
        // SAFETY: [R+O] see the README, Safety.
        check(unsafe { sys::portreg_stats(self.raw(), &mut s) })?;
        Ok(Stats {
            tracked: s.tracked,
            slots: s.slots,
            table_capacity: s.table_capacity,
            bytes: s.bytes,
            compactions: s.compactions,
            changes: s.changes,
            probe_max: s.probe_max,
            reseeds: s.reseeds,
            deferred_bytes: s.deferred_bytes,
        })
    }

    /// Frees all memory waiting for a grace period, waiting for readers to
    /// leave their epoch sections. Never needed for correctness. Takes
    /// `&mut self` because it must not run inside an iteration of the same
    /// thread (it would wait for itself); exclusive access rules that out.
    ///
    /// ```
    /// let mut reg = portreg::Registry::new()?;
    /// reg.track("a")?;
    /// reg.untrack("a")?;
    /// reg.reclaim()?;
    /// assert_eq!(reg.stats()?.deferred_bytes, 0);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn reclaim(&mut self) -> Result<(), Error> {
        // SAFETY: [R] &mut self proves no Iter of this registry is
        // alive on this thread.
        check(unsafe { sys::portreg_reclaim(self.raw()) })
    }

    /// Opens a [`Handle`] on `id`: reads through it skip the hash lookup.
    /// The id need not be tracked. Blocking (takes the writer lock).
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let h = reg.handle("zccache")?;
    /// assert_eq!(h.lookup(), None);
    /// reg.register("zccache", 49152)?;
    /// assert_eq!(h.lookup(), Some(49152));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn handle(&self, id: impl AsRef<[u8]>) -> Result<Handle<'_>, Error> {
        Handle::open(self, id.as_ref())
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::portreg_t {
        self.raw()
    }

    /// A share in the C registry's lifetime, for objects that must be
    /// finished before it is destroyed.
    pub(crate) fn owner(&self) -> Arc<Owner> {
        Arc::clone(&self.owner)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("tracked", &self.count()).finish()
    }
}

/// A walk over every tracked backend, from [`Registry::iter`]. Iterate over
/// `&iter` (or call [`next_entry`](Iter::next_entry)); entries borrow it.
/// It belongs to the thread that made it (not `Send`: it holds that
/// thread's epoch record):
///
/// ```compile_fail,E0277
/// let reg = portreg::Registry::new().unwrap();
/// let walk = reg.iter();
/// std::thread::scope(|s| {
///     s.spawn(move || walk.next_entry().is_some());
/// });
/// ```
///
/// ```
/// let reg = portreg::Registry::new()?;
/// reg.register("fbuild", 8002)?;
/// let walk = reg.iter();
/// let first = walk.next_entry().unwrap();
/// assert_eq!((first.id, first.state.state), (&b"fbuild"[..], portreg::State::Bound(8002)));
/// assert!(walk.next_entry().is_none());
/// # Ok::<(), portreg::Error>(())
/// ```
pub struct Iter<'reg> {
    it: Box<UnsafeCell<sys::portreg_iter_t>>,
    // Keeps the C registry alive until fini has run (also if the Iter is
    // forgotten: then the registry is never destroyed).
    _owner: Arc<Owner>,
    _reg: PhantomData<&'reg Registry>,
    // The C iterator holds the thread's epoch record: one thread only.
    _one_thread: PhantomData<*const ()>,
}

impl<'reg> Iter<'reg> {
    /// The next tracked backend, or `None` when the walk is done.
    /// Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert!(reg.iter().next_entry().is_none());
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn next_entry(&self) -> Option<Entry<'_>> {
        let mut e = std::mem::MaybeUninit::<sys::portreg_entry_t>::uninit();
        // SAFETY: self.it was initialized by iter_init and not finished;
        // only this thread touches it (Iter is neither Send nor Sync) and no
        // other reference into the UnsafeCell exists during the call (the
        // C call does not call back into Rust); e is writable.
        if !unsafe { sys::portreg_iter_next(self.it.get(), e.as_mut_ptr()) } {
            return None;
        }
        // SAFETY: iter_next returned true, so it filled the entry.
        let e = unsafe { e.assume_init() };
        // SAFETY: e.id points to e.id_len readable bytes inside the registry
        // that stay valid until iter_fini, which runs in Drop: the returned
        // borrow of self ends before that.
        let id = unsafe { std::slice::from_raw_parts(e.id.cast::<u8>(), e.id_len) };
        Some(Entry { id, state: Versioned::from_raw(e.state) })
    }
}

impl Drop for Iter<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized by iter_init, finished exactly once, on the
        // thread that started it (not Send), while the registry lives
        // (self._owner is dropped after this body); no Entry borrows self
        // any more.
        unsafe { sys::portreg_iter_fini(self.it.get()) }
    }
}

impl<'it, 'reg> IntoIterator for &'it Iter<'reg> {
    type Item = Entry<'it>;
    type IntoIter = Entries<'it, 'reg>;

    fn into_iter(self) -> Entries<'it, 'reg> {
        Entries { walk: self }
    }
}

/// The [`Iterator`] over an [`Iter`]'s entries (`(&walk).into_iter()`).
///
/// ```
/// let reg = portreg::Registry::new()?;
/// reg.track("a")?;
/// assert_eq!((&reg.iter()).into_iter().count(), 1);
/// # Ok::<(), portreg::Error>(())
/// ```
pub struct Entries<'it, 'reg> {
    walk: &'it Iter<'reg>,
}

impl<'it> Iterator for Entries<'it, '_> {
    type Item = Entry<'it>;

    fn next(&mut self) -> Option<Entry<'it>> {
        self.walk.next_entry()
    }
}

/// Decodes a `BackendHttpReady` body: its port (1..=65535). Touches no
/// registry.
///
/// ```
/// assert_eq!(portreg::decode_port(&portreg::encode_ready(8002)), Ok(8002));
/// assert_eq!(portreg::decode_port(&[]), Err(portreg::Error::Range));
/// ```
pub fn decode_port(body: &[u8]) -> Result<u16, Error> {
    let mut port = 0u16;
    // SAFETY: body is a readable slice (non-NULL pointer even when empty);
    // &mut port is a valid out-pointer.
    check(unsafe { sys::portreg_decode_port(body.as_ptr(), body.len(), &mut port) })?;
    Ok(port)
}

/// Decodes a `BackendHttpReady` body and returns the port field exactly as
/// decoded (0 when absent), with no range check: for reporting the value of
/// a port out of range.
///
/// ```
/// assert_eq!(portreg::decode_ready(&portreg::encode_ready(70_000)), Ok(70_000));
/// assert_eq!(portreg::decode_ready(&[0xff; 8]), Err(portreg::Error::Decode));
/// ```
pub fn decode_ready(body: &[u8]) -> Result<u32, Error> {
    let mut value = 0u32;
    // SAFETY: as decode_port.
    check(unsafe { sys::portreg_decode_ready(body.as_ptr(), body.len(), &mut value) })?;
    Ok(value)
}

/// Encodes `BackendHttpReady { port }` (any 32-bit value; 0 is the empty
/// body, as proto3 writes it).
///
/// ```
/// assert_eq!(portreg::encode_ready(150), [0x08, 0x96, 0x01]);
/// ```
pub fn encode_ready(port: u32) -> Vec<u8> {
    let mut buf = [0u8; sys::PORTREG_READY_MAX_SIZE];
    // SAFETY: buf is writable for buf.len() bytes, the most an encoding takes.
    let n = unsafe { sys::portreg_encode_ready(port, buf.as_mut_ptr(), buf.len()) };
    assert!(n >= 0, "PORTREG_READY_MAX_SIZE bytes always suffice");
    buf[..n as usize].to_vec()
}
