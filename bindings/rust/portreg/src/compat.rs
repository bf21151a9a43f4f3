//! The reference registry's API on top of portreg: replacing the import is
//! the only change a broker needs.
//!
//! ```
//! // Before: use broker::registry::{decode_and_register, HttpEndpointRegistry};
//! use portreg::compat::{decode_and_register, BackendHttpReadyError, HttpEndpointRegistry};
//!
//! let registry = HttpEndpointRegistry::new();
//! registry.track("zccache".to_string());
//! assert_eq!(registry.state("zccache"), Some(None));
//! let body = portreg::encode_ready(49152);
//! assert_eq!(decode_and_register(&registry, "zccache".to_string(), &body).unwrap(), 49152);
//! assert_eq!(registry.lookup("zccache"), Some(49152));
//! ```
//!
//! # Where portreg deliberately differs
//!
//! - **Port 0 is refused.** It means "let the OS choose", so nobody can
//!   connect to it. [`HttpEndpointRegistry::register_backend_http_endpoint`]
//!   with port 0 changes nothing and returns `None`;
//!   [`decode_and_register`] reports `PortOutOfRange(0)` (which also covers
//!   the empty body, where proto3 leaves the port 0).
//! - **A lookup of an unusual id takes a lock.** Every `String` is a valid
//!   id, as in the reference. The C registry holds ids of 1..=[`ID_MAX`]
//!   bytes (every id a broker sees in practice); the others (the empty id
//!   and ids longer than that) live in a `HashMap` of their own behind a
//!   lock, with the same behaviour, so that lookups of ordinary ids stay
//!   wait-free and never meet that lock. The two sets are told apart by
//!   length alone.
//! - **[`HttpEndpointRegistry::snapshot`] is sorted by id** (bytewise),
//!   where a `HashMap` has no order.
//! - **Out of memory panics**, where a `HashMap` would abort.
//!
//! Everything else — states, return values, "the registry is unchanged when
//! decoding fails" — is the reference's, and `lookup` of an ordinary id is
//! wait-free. Memory and time stay proportional to the id: an id is hashed
//! and stored once, whatever its length.
use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::{Error, Registry, State, ID_MAX};

/// A backend's id, as the reference names it.
///
/// ```
/// let id: portreg::compat::BackendId = "fbuild".to_string();
/// # let _ = id;
/// ```
pub type BackendId = String;

/// Where each backend's HTTP server listens: the reference registry's API,
/// backed by a lock-free [`Registry`] for ids of 1..=[`ID_MAX`] bytes and
/// a locked `HashMap` for any other `String`. `Send + Sync`; share it with
/// an `Arc`.
///
/// ```
/// let registry = portreg::compat::HttpEndpointRegistry::new();
/// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8002), None);
/// assert_eq!(registry.lookup("fbuild"), Some(8002));
/// ```
pub struct HttpEndpointRegistry {
    /// Ids of 1..=ID_MAX bytes.
    inner: Registry,
    /// The other ids: the empty one and longer ones, which the C registry
    /// refuses. A std map, so that any `String` works.
    unusual: RwLock<HashMap<BackendId, Option<u16>>>,
}

/// Whether the C registry holds this id (otherwise `unusual` does).
fn held_by_core(backend_id: &str) -> bool {
    (1..=ID_MAX).contains(&backend_id.len())
}

/// The id for a panic message: its length and at most its first 32 bytes
/// (an id may be megabytes long).
fn describe_id(backend_id: &str) -> String {
    let mut end = backend_id.len().min(32);
    while !backend_id.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < backend_id.len() { "…" } else { "" };
    format!("backend id {:?}{more} ({} bytes)", &backend_id[..end], backend_id.len())
}

/// The only errors left for an id the core holds are out of memory and the
/// like: a panic, as documented.
fn expect_ok<T>(r: Result<T, Error>, what: &str, backend_id: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("portreg::compat::{what}: {e}, {}", describe_id(backend_id)),
    }
}

impl HttpEndpointRegistry {
    /// An empty registry.
    ///
    /// # Panics
    /// If the C library cannot allocate the registry.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert!(registry.snapshot().is_empty());
    /// ```
    pub fn new() -> Self {
        match Registry::new() {
            Ok(inner) => HttpEndpointRegistry { inner, unusual: RwLock::default() },
            Err(e) => panic!("portreg::compat::HttpEndpointRegistry::new: {e}"),
        }
    }

    // A panic cannot happen while the lock is held (only allocation
    // failure, which aborts), so a poisoned lock holds a consistent map.
    fn unusual(&self) -> RwLockReadGuard<'_, HashMap<BackendId, Option<u16>>> {
        self.unusual.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn unusual_mut(&self) -> RwLockWriteGuard<'_, HashMap<BackendId, Option<u16>>> {
        self.unusual.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `port` (not 0) for the backend; the port it replaced.
    fn register(&self, backend_id: BackendId, port: u16, what: &str) -> Option<u16> {
        if !held_by_core(&backend_id) {
            return self.unusual_mut().insert(backend_id, Some(port)).flatten();
        }
        expect_ok(self.inner.register(&backend_id, port), what, &backend_id).state.port()
    }

    /// Makes the backend known with no port yet, unless it is already known
    /// (then nothing changes).
    ///
    /// # Panics
    /// If memory ran out.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// registry.track("zccache".to_string());
    /// assert_eq!(registry.state("zccache"), Some(None));
    /// registry.track(String::new()); // any String is an id
    /// assert_eq!(registry.state(""), Some(None));
    /// ```
    pub fn track(&self, backend_id: BackendId) {
        if !held_by_core(&backend_id) {
            self.unusual_mut().entry(backend_id).or_insert(None);
            return;
        }
        expect_ok(self.inner.track(&backend_id), "track", &backend_id)
    }

    /// Records the backend's HTTP port (tracking it if needed); returns the
    /// port it replaced, if it had one. Port 0 is refused: nothing changes
    /// and the result is `None`.
    ///
    /// # Panics
    /// If memory ran out.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8001), None);
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8002), Some(8001));
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 0), None);
    /// assert_eq!(registry.lookup("fbuild"), Some(8002));
    /// let long = "x".repeat(70_000); // any String is an id
    /// assert_eq!(registry.register_backend_http_endpoint(long.clone(), 8003), None);
    /// assert_eq!(registry.lookup(&long), Some(8003));
    /// ```
    pub fn register_backend_http_endpoint(&self, backend_id: BackendId, port: u16) -> Option<u16> {
        if port == 0 {
            return None;
        }
        self.register(backend_id, port, "register_backend_http_endpoint")
    }

    /// The backend's port, iff it has reported one. Wait-free for ids of
    /// 1..=[`ID_MAX`] bytes; others take a read lock.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.lookup("unknown"), None);
    /// assert_eq!(registry.lookup(""), None);
    /// ```
    #[inline]
    pub fn lookup(&self, backend_id: &str) -> Option<u16> {
        if held_by_core(backend_id) {
            return self.inner.lookup(backend_id);
        }
        self.unusual().get(backend_id).copied().flatten()
    }

    /// `None`: unknown backend; `Some(None)`: known, no port yet;
    /// `Some(Some(port))`: listening on `port`. Wait-free for ids of
    /// 1..=[`ID_MAX`] bytes; others take a read lock.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.state("zccache"), None);
    /// registry.register_backend_http_endpoint("zccache".into(), 49152);
    /// assert_eq!(registry.state("zccache"), Some(Some(49152)));
    /// ```
    pub fn state(&self, backend_id: &str) -> Option<Option<u16>> {
        if !held_by_core(backend_id) {
            return self.unusual().get(backend_id).copied();
        }
        match self.inner.get(backend_id).map(|v| v.state) {
            Ok(State::Bound(port)) => Some(Some(port)),
            Ok(State::Pending) => Some(None),
            Ok(State::Untracked) | Err(_) => None,
        }
    }

    /// Every known backend with its port, if any, sorted by id.
    ///
    /// # Panics
    /// If memory ran out.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// registry.track("zccache".into());
    /// registry.register_backend_http_endpoint("fbuild".into(), 8002);
    /// assert_eq!(
    ///     registry.snapshot(),
    ///     vec![("fbuild".to_string(), Some(8002)), ("zccache".to_string(), None)]
    /// );
    /// ```
    pub fn snapshot(&self) -> Vec<(BackendId, Option<u16>)> {
        let entries = match self.inner.snapshot() {
            Ok(entries) => entries,
            Err(e) => panic!("portreg::compat::snapshot: {e}"),
        };
        // Every id in the core came from a String, so the lossy branch is
        // never taken; it only spares a panic.
        let mut out: Vec<(BackendId, Option<u16>)> = entries
            .into_iter()
            .map(|e| {
                let id = String::from_utf8(e.id)
                    .unwrap_or_else(|bad| String::from_utf8_lossy(bad.as_bytes()).into_owned());
                (id, e.state.state.port())
            })
            .collect();
        let unusual = self.unusual();
        if !unusual.is_empty() {
            out.extend(unusual.iter().map(|(id, port)| (id.clone(), *port)));
            drop(unusual);
            // str orders bytewise, as the core's snapshot does.
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        out
    }
}

impl Default for HttpEndpointRegistry {
    /// Same as [`HttpEndpointRegistry::new`].
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::default();
    /// assert_eq!(registry.lookup("x"), None);
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HttpEndpointRegistry {
    /// The backends and their ports, as a map.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// registry.register_backend_http_endpoint("fbuild".into(), 8002);
    /// assert!(format!("{registry:?}").contains(r#""fbuild": Some(8002)"#));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpEndpointRegistry")
            .field("endpoints", &DebugMap(self.snapshot()))
            .finish()
    }
}

struct DebugMap(Vec<(BackendId, Option<u16>)>);

impl fmt::Debug for DebugMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, v))).finish()
    }
}

/// A `BackendHttpReady` body that is not valid protobuf (or not a valid
/// message of that type).
///
/// ```
/// let e = portreg::compat::DecodeError::default();
/// assert!(!e.to_string().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeError(());

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::Decode, f)
    }
}

impl std::error::Error for DecodeError {}

/// Why [`decode_and_register`] registered nothing.
///
/// ```
/// use portreg::compat::BackendHttpReadyError;
/// let e = BackendHttpReadyError::PortOutOfRange(70_000);
/// assert!(e.to_string().contains("70000"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendHttpReadyError {
    /// The body is malformed.
    Decode(DecodeError),
    /// The decoded port is 0 or above 65535; carries the value as decoded.
    PortOutOfRange(u32),
}

impl fmt::Display for BackendHttpReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendHttpReadyError::Decode(e) => write!(f, "invalid BackendHttpReady frame: {e}"),
            BackendHttpReadyError::PortOutOfRange(port) => {
                write!(f, "BackendHttpReady port {port} is out of range (1..=65535)")
            }
        }
    }
}

impl std::error::Error for BackendHttpReadyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BackendHttpReadyError::Decode(e) => Some(e),
            BackendHttpReadyError::PortOutOfRange(_) => None,
        }
    }
}

/// Decodes a `BackendHttpReady` body and records its port for the backend;
/// returns the port. On any error the registry is unchanged.
///
/// # Panics
/// If memory ran out.
///
/// ```
/// use portreg::compat::{decode_and_register, BackendHttpReadyError, HttpEndpointRegistry};
/// let registry = HttpEndpointRegistry::new();
/// let body = portreg::encode_ready(70_000);
/// assert_eq!(
///     decode_and_register(&registry, "zccache".into(), &body),
///     Err(BackendHttpReadyError::PortOutOfRange(70_000))
/// );
/// assert!(matches!(
///     decode_and_register(&registry, "zccache".into(), &[0xff; 8]),
///     Err(BackendHttpReadyError::Decode(_))
/// ));
/// assert_eq!(registry.state("zccache"), None);
/// ```
pub fn decode_and_register(
    registry: &HttpEndpointRegistry,
    backend_id: BackendId,
    bytes: &[u8],
) -> Result<u16, BackendHttpReadyError> {
    let value =
        crate::decode_ready(bytes).map_err(|_| BackendHttpReadyError::Decode(DecodeError(())))?;
    let port = match u16::try_from(value) {
        Ok(port) if port != 0 => port,
        _ => return Err(BackendHttpReadyError::PortOutOfRange(value)),
    };
    registry.register(backend_id, port, "decode_and_register");
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::describe_id;

    #[test]
    fn a_panic_message_names_an_id_by_its_length_and_a_short_prefix() {
        let long = "€".repeat(350_000); // 3-byte chars: byte 32 is inside one
        let text = describe_id(&long);
        assert!(text.len() < 80, "{text}");
        assert!(text.contains(&format!(r#""{}"…"#, "€".repeat(10))), "{text}");
        assert!(text.ends_with("(1050000 bytes)"), "{text}");
        assert_eq!(describe_id(""), r#"backend id "" (0 bytes)"#);
        assert_eq!(describe_id("a\0b"), r#"backend id "a\0b" (3 bytes)"#);
    }
}
