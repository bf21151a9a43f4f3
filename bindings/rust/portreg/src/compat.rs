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
//! - **Ids are 1..=255 bytes.** The writers (`track`,
//!   `register_backend_http_endpoint`, `decode_and_register`) panic on an
//!   empty id or a longer one; the readers answer as for an unknown backend.
//! - **[`HttpEndpointRegistry::snapshot`] is sorted by id** (bytewise),
//!   where a `HashMap` has no order.
//! - **Out of memory panics**, where a `HashMap` would abort.
//!
//! Everything else — states, return values, "the registry is unchanged when
//! decoding fails" — is the reference's, and `lookup` is wait-free.
use std::fmt;

use crate::{Error, Registry, State};

/// A backend's id, as the reference names it.
///
/// ```
/// let id: portreg::compat::BackendId = "fbuild".to_string();
/// # let _ = id;
/// ```
pub type BackendId = String;

/// Where each backend's HTTP server listens: the reference registry's API,
/// backed by a lock-free [`Registry`]. `Send + Sync`; share it with an
/// `Arc`.
///
/// ```
/// let registry = portreg::compat::HttpEndpointRegistry::new();
/// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8002), None);
/// assert_eq!(registry.lookup("fbuild"), Some(8002));
/// ```
pub struct HttpEndpointRegistry {
    inner: Registry,
}

fn expect_ok<T>(r: Result<T, Error>, what: &str, backend_id: &str) -> T {
    match r {
        Ok(v) => v,
        Err(Error::Invalid) => panic!(
            "portreg::compat::{what}: backend id {backend_id:?} is not 1..={} bytes",
            crate::ID_MAX
        ),
        Err(e) => panic!("portreg::compat::{what}({backend_id:?}): {e}"),
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
            Ok(inner) => HttpEndpointRegistry { inner },
            Err(e) => panic!("portreg::compat::HttpEndpointRegistry::new: {e}"),
        }
    }

    /// Makes the backend known with no port yet, unless it is already known
    /// (then nothing changes).
    ///
    /// # Panics
    /// If the id is empty or longer than 255 bytes, or memory ran out.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// registry.track("zccache".to_string());
    /// assert_eq!(registry.state("zccache"), Some(None));
    /// ```
    pub fn track(&self, backend_id: BackendId) {
        expect_ok(self.inner.track(&backend_id), "track", &backend_id)
    }

    /// Records the backend's HTTP port (tracking it if needed); returns the
    /// port it replaced, if it had one. Port 0 is refused: nothing changes
    /// and the result is `None`.
    ///
    /// # Panics
    /// If the id is empty or longer than 255 bytes, or memory ran out.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8001), None);
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 8002), Some(8001));
    /// assert_eq!(registry.register_backend_http_endpoint("fbuild".into(), 0), None);
    /// assert_eq!(registry.lookup("fbuild"), Some(8002));
    /// ```
    pub fn register_backend_http_endpoint(&self, backend_id: BackendId, port: u16) -> Option<u16> {
        if port == 0 {
            return None;
        }
        let prev = expect_ok(
            self.inner.register(&backend_id, port),
            "register_backend_http_endpoint",
            &backend_id,
        );
        prev.state.port()
    }

    /// The backend's port, iff it has reported one. Wait-free.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.lookup("unknown"), None);
    /// ```
    pub fn lookup(&self, backend_id: &str) -> Option<u16> {
        self.inner.lookup(backend_id)
    }

    /// `None`: unknown backend; `Some(None)`: known, no port yet;
    /// `Some(Some(port))`: listening on `port`. Wait-free.
    ///
    /// ```
    /// let registry = portreg::compat::HttpEndpointRegistry::new();
    /// assert_eq!(registry.state("zccache"), None);
    /// registry.register_backend_http_endpoint("zccache".into(), 49152);
    /// assert_eq!(registry.state("zccache"), Some(Some(49152)));
    /// ```
    pub fn state(&self, backend_id: &str) -> Option<Option<u16>> {
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
        entries
            .into_iter()
            .map(|e| (String::from_utf8_lossy(&e.id).into_owned(), e.state.state.port()))
            .collect()
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
/// If the id is empty or longer than 255 bytes, or memory ran out.
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
    expect_ok(registry.inner.register(&backend_id, port), "decode_and_register", &backend_id);
    Ok(port)
}
