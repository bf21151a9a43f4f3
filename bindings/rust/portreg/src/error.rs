use std::ffi::CStr;
use std::fmt;

use portreg_sys as sys;

/// Why a call failed: one variant per `PORTREG_E*` code of the C library.
///
/// A call that returns an error changed nothing.
///
/// ```
/// use portreg::{Error, Registry};
///
/// let reg = Registry::new()?;
/// // Port 0 means "chosen by the OS": never reachable, so it is refused.
/// assert_eq!(reg.register("zccache", 0), Err(Error::Range));
/// assert_eq!(Error::Range.code(), -4);
/// assert_eq!(Error::Range.name(), "PORTREG_ERANGE");
/// # Ok::<(), portreg::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// `PORTREG_EINVAL`: a bad id (empty or longer than [`ID_MAX`](crate::ID_MAX) bytes)
    /// or a bad argument.
    Invalid,
    /// `PORTREG_ENOMEM`: an allocation failed.
    NoMem,
    /// `PORTREG_EDECODE`: the body is not a valid `BackendHttpReady`.
    Decode,
    /// `PORTREG_ERANGE`: the port is 0 or above 65535.
    Range,
    /// `PORTREG_ECONFLICT`: a conditional update found another version.
    Conflict,
    /// `PORTREG_ETIMEDOUT`: no change before the timeout.
    TimedOut,
    /// `PORTREG_EVERSION`: a frame with a framing version other than 1.
    Version,
    /// `PORTREG_ETOOLARGE`: a frame declared a body above the reader's limit.
    TooLarge,
    /// `PORTREG_ETRUNCATED`: the stream ended inside a frame.
    Truncated,
    /// `PORTREG_ESYSTEM`: a system call failed, with its `errno`.
    System(i32),
    /// `PORTREG_EFULL`: a new id would exceed [`Options::max_ids`](crate::Options::max_ids).
    Full,
    /// A code this crate does not know (a newer library).
    Unknown(i32),
}

impl Error {
    /// The error for a negative C return code. `PORTREG_ESYSTEM` takes the
    /// calling thread's `portreg_last_errno()`, so call this right after the
    /// failing call, on the same thread.
    ///
    /// ```
    /// assert_eq!(portreg::Error::from_code(-5), portreg::Error::Conflict);
    /// assert_eq!(portreg::Error::from_code(-1000), portreg::Error::Unknown(-1000));
    /// ```
    pub fn from_code(code: i32) -> Error {
        match code {
            sys::PORTREG_EINVAL => Error::Invalid,
            sys::PORTREG_ENOMEM => Error::NoMem,
            sys::PORTREG_EDECODE => Error::Decode,
            sys::PORTREG_ERANGE => Error::Range,
            sys::PORTREG_ECONFLICT => Error::Conflict,
            sys::PORTREG_ETIMEDOUT => Error::TimedOut,
            sys::PORTREG_EVERSION => Error::Version,
            sys::PORTREG_ETOOLARGE => Error::TooLarge,
            sys::PORTREG_ETRUNCATED => Error::Truncated,
            // SAFETY: no arguments; reads a thread-local integer.
            sys::PORTREG_ESYSTEM => Error::System(unsafe { sys::portreg_last_errno() }),
            sys::PORTREG_EFULL => Error::Full,
            other => Error::Unknown(other),
        }
    }

    /// The C library's code, `PORTREG_E*`.
    ///
    /// ```
    /// assert_eq!(portreg::Error::Full.code(), portreg_sys::PORTREG_EFULL);
    /// ```
    pub fn code(&self) -> i32 {
        match *self {
            Error::Invalid => sys::PORTREG_EINVAL,
            Error::NoMem => sys::PORTREG_ENOMEM,
            Error::Decode => sys::PORTREG_EDECODE,
            Error::Range => sys::PORTREG_ERANGE,
            Error::Conflict => sys::PORTREG_ECONFLICT,
            Error::TimedOut => sys::PORTREG_ETIMEDOUT,
            Error::Version => sys::PORTREG_EVERSION,
            Error::TooLarge => sys::PORTREG_ETOOLARGE,
            Error::Truncated => sys::PORTREG_ETRUNCATED,
            Error::System(_) => sys::PORTREG_ESYSTEM,
            Error::Full => sys::PORTREG_EFULL,
            Error::Unknown(code) => code,
        }
    }

    /// The code's name, `"PORTREG_EINVAL"`, from the C library.
    ///
    /// ```
    /// assert_eq!(portreg::Error::TimedOut.name(), "PORTREG_ETIMEDOUT");
    /// ```
    pub fn name(&self) -> &'static str {
        // SAFETY: portreg_err_name accepts any int and returns a pointer to a
        // static NUL-terminated string, never NULL.
        static_str(unsafe { sys::portreg_err_name(self.code()) })
    }
}

/// Turns a C return code (0 or a negative code) into a `Result`.
pub(crate) fn check(rc: i32) -> Result<(), Error> {
    if rc >= 0 {
        Ok(())
    } else {
        Err(Error::from_code(rc))
    }
}

/// A static string from the C library (strerror, err_name, version).
pub(crate) fn static_str(p: *const std::ffi::c_char) -> &'static str {
    // SAFETY: callers pass only pointers the C library documents as static,
    // NUL-terminated and never NULL; the texts are ASCII.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("(not UTF-8)")
}

impl fmt::Display for Error {
    /// The C library's message (`portreg_strerror`), plus the OS's for
    /// [`Error::System`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: portreg_strerror accepts any int and returns a static
        // NUL-terminated string, never NULL.
        let text = static_str(unsafe { sys::portreg_strerror(self.code()) });
        match *self {
            Error::System(errno) => {
                write!(f, "{text}: {}", std::io::Error::from_raw_os_error(errno))
            }
            _ => f.write_str(text),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    /// [`Error::System`] keeps its `errno`; the rest become
    /// `io::ErrorKind::Other` carrying the portreg error.
    ///
    /// ```
    /// let e: std::io::Error = portreg::Error::System(24).into();
    /// assert_eq!(e.raw_os_error(), Some(24));
    /// ```
    fn from(e: Error) -> std::io::Error {
        match e {
            Error::System(errno) => std::io::Error::from_raw_os_error(errno),
            Error::TimedOut => std::io::Error::new(std::io::ErrorKind::TimedOut, e),
            other => std::io::Error::other(other),
        }
    }
}
