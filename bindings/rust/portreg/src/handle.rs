use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use portreg_sys as sys;

use crate::error::check;
use crate::{timeout_ns, Error, Owner, Registry, Versioned};

/// An id resolved once: reads through it cost one atomic load (no hash, no
/// probe). It follows the id through every state change, tracked or not,
/// and keeps the id's slot in the table while open. It borrows its
/// [`Registry`], so it cannot outlive it:
///
/// ```compile_fail,E0597
/// let h = {
///     let reg = portreg::Registry::new().unwrap();
///     reg.handle("zccache").unwrap()
/// }; // reg dropped here while the handle still borrows it
/// h.lookup();
/// ```
///
/// Handles are `Send + Sync`: share one between threads freely. Dropping it
/// closes it; the id's state is untouched.
///
/// ```
/// let reg = portreg::Registry::new()?;
/// let h = reg.handle("zccache")?;
/// std::thread::scope(|s| {
///     s.spawn(|| reg.register("zccache", 49152));
/// });
/// assert_eq!(h.lookup(), Some(49152));
/// # Ok::<(), portreg::Error>(())
/// ```
pub struct Handle<'reg> {
    raw: NonNull<sys::portreg_handle_t>,
    // Keeps the C registry alive until the handle is closed (also if the
    // Handle is forgotten: then the registry is never destroyed).
    _owner: Arc<Owner>,
    _reg: PhantomData<&'reg Registry>,
}

// SAFETY: the C library lets handles be used from any thread; only close
// must not race with other calls on the handle, and close runs in Drop,
// which has exclusive access.
unsafe impl Send for Handle<'_> {}
// SAFETY: lookup/get/wait/id take a const handle and are thread-safe.
unsafe impl Sync for Handle<'_> {}

impl<'reg> Handle<'reg> {
    pub(crate) fn open(reg: &'reg Registry, id: &[u8]) -> Result<Handle<'reg>, Error> {
        let mut out: *mut sys::portreg_handle_t = std::ptr::null_mut();
        // SAFETY: [R+I+O] live registry; readable id slice; &mut out
        // a valid pointer-sized out-parameter.
        check(unsafe {
            sys::portreg_handle_open(reg.as_ptr(), id.as_ptr().cast(), id.len(), &mut out)
        })?;
        let raw = NonNull::new(out).ok_or(Error::NoMem)?;
        Ok(Handle { raw, _owner: reg.owner(), _reg: PhantomData })
    }

    /// The port, iff the id is bound. Wait-free: one atomic load.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// reg.register("fbuild", 8002)?;
    /// assert_eq!(reg.handle("fbuild")?.lookup(), Some(8002));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn lookup(&self) -> Option<u16> {
        let mut port = 0u16;
        // SAFETY: [H] the handle is open (closed only in Drop) and
        // its registry alive (self._owner); &mut port is a valid out-pointer.
        unsafe { sys::portreg_handle_lookup(self.raw.as_ptr(), &mut port) }.then_some(port)
    }

    /// The id's state and version. Wait-free.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let h = reg.handle("fbuild")?;
    /// assert_eq!(h.get()?, portreg::Versioned::UNTRACKED);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn get(&self) -> Result<Versioned, Error> {
        let mut state = sys::portreg_state_t::default();
        // SAFETY: [H] see the README, Safety.
        check(unsafe { sys::portreg_handle_get(self.raw.as_ptr(), &mut state) })?;
        Ok(Versioned::from_raw(state))
    }

    /// As [`Registry::wait`] on the handle's id; never allocates.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let h = reg.handle("fbuild")?;
    /// let r = h.wait(0, std::time::Duration::from_millis(1));
    /// assert_eq!(r, Err(portreg::Error::TimedOut));
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn wait(&self, seen_version: u32, timeout: Duration) -> Result<Versioned, Error> {
        self.wait_ns(seen_version, timeout_ns(timeout))
    }

    /// As [`Registry::wait_forever`] on the handle's id.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// let h = reg.handle("fbuild")?;
    /// reg.track("fbuild")?;
    /// assert_eq!(h.wait_forever(0)?.state, portreg::State::Pending);
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn wait_forever(&self, seen_version: u32) -> Result<Versioned, Error> {
        self.wait_ns(seen_version, -1)
    }

    fn wait_ns(&self, seen_version: u32, ns: i64) -> Result<Versioned, Error> {
        let mut state = sys::portreg_state_t::default();
        // SAFETY: [H] see the README, Safety.
        check(unsafe {
            sys::portreg_handle_wait(self.raw.as_ptr(), seen_version, ns, &mut state)
        })?;
        Ok(Versioned::from_raw(state))
    }

    /// The handle's id.
    ///
    /// ```
    /// let reg = portreg::Registry::new()?;
    /// assert_eq!(reg.handle("zccache")?.id(), b"zccache");
    /// # Ok::<(), portreg::Error>(())
    /// ```
    pub fn id(&self) -> &[u8] {
        let mut len = 0usize;
        // SAFETY: [H] see the README, Safety.
        let p = unsafe { sys::portreg_handle_id(self.raw.as_ptr(), &mut len) };
        if p.is_null() || len == 0 {
            return &[];
        }
        // SAFETY: the C side documents p as len readable bytes valid until
        // the handle is closed, which cannot happen while &self is borrowed.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: opened by handle_open, closed exactly once, with exclusive
        // access (&mut self), while the registry lives (self._owner is
        // dropped after this body).
        unsafe { sys::portreg_handle_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Handle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("id", &String::from_utf8_lossy(self.id()))
            .field("state", &self.get())
            .finish()
    }
}
