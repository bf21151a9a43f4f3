//! The reference registry's unit tests, run against portreg::compat.
use portreg::compat::{
    decode_and_register, BackendHttpReadyError, BackendId, HttpEndpointRegistry,
};

/// BackendHttpReady { port: 49152 }: field 1, varint 0x80 0x80 0x03.
const PORT_49152: &[u8] = &[0x08, 0x80, 0x80, 0x03];
/// BackendHttpReady { port: 70000 }: field 1, varint 0xF0 0xA2 0x04.
const PORT_70000: &[u8] = &[0x08, 0xF0, 0xA2, 0x04];

fn id(s: &str) -> BackendId {
    s.to_string()
}

#[test]
fn unknown_backend_has_no_state_and_no_port() {
    let registry = HttpEndpointRegistry::new();
    assert_eq!(registry.lookup("zccache"), None);
    assert_eq!(registry.state("zccache"), None);
}

#[test]
fn track_then_lookup_is_pending() {
    let registry = HttpEndpointRegistry::new();
    registry.track(id("zccache"));
    assert_eq!(registry.lookup("zccache"), None);
    assert_eq!(registry.state("zccache"), Some(None));
}

#[test]
fn register_makes_the_port_available() {
    let registry = HttpEndpointRegistry::new();
    registry.track(id("fbuild"));
    assert_eq!(registry.register_backend_http_endpoint(id("fbuild"), 8002), None);
    assert_eq!(registry.lookup("fbuild"), Some(8002));
    assert_eq!(registry.state("fbuild"), Some(Some(8002)));
}

#[test]
fn re_register_returns_the_previous_port() {
    let registry = HttpEndpointRegistry::new();
    assert_eq!(registry.register_backend_http_endpoint(id("fbuild"), 8001), None);
    assert_eq!(registry.register_backend_http_endpoint(id("fbuild"), 8002), Some(8001));
    assert_eq!(registry.lookup("fbuild"), Some(8002));
}

#[test]
fn track_keeps_a_bound_backend_bound() {
    let registry = HttpEndpointRegistry::new();
    registry.register_backend_http_endpoint(id("fbuild"), 8002);
    registry.track(id("fbuild"));
    assert_eq!(registry.lookup("fbuild"), Some(8002));
}

#[test]
fn snapshot_lists_pending_and_bound_backends() {
    let registry = HttpEndpointRegistry::new();
    registry.track(id("zccache"));
    registry.register_backend_http_endpoint(id("fbuild"), 8002);
    let mut snapshot = registry.snapshot();
    snapshot.sort();
    assert_eq!(snapshot, vec![(id("fbuild"), Some(8002)), (id("zccache"), None)]);
}

#[test]
fn decode_and_register_records_port_49152() {
    let registry = HttpEndpointRegistry::new();
    registry.track(id("zccache"));
    assert_eq!(decode_and_register(&registry, id("zccache"), PORT_49152), Ok(49152));
    assert_eq!(registry.lookup("zccache"), Some(49152));
}

#[test]
fn port_70000_is_out_of_range_and_the_registry_is_untouched() {
    let registry = HttpEndpointRegistry::new();
    registry.track(id("zccache"));
    let before = registry.snapshot();
    assert_eq!(
        decode_and_register(&registry, id("zccache"), PORT_70000),
        Err(BackendHttpReadyError::PortOutOfRange(70_000))
    );
    assert_eq!(registry.state("zccache"), Some(None));
    assert_eq!(registry.snapshot(), before);
}

#[test]
fn eight_ff_bytes_are_a_decode_error_and_the_registry_is_untouched() {
    let registry = HttpEndpointRegistry::new();
    registry.register_backend_http_endpoint(id("fbuild"), 8002);
    let before = registry.snapshot();
    let err = decode_and_register(&registry, id("zccache"), &[0xFF; 8]).unwrap_err();
    assert!(matches!(err, BackendHttpReadyError::Decode(_)), "{err:?}");
    assert_eq!(registry.state("zccache"), None);
    assert_eq!(registry.snapshot(), before);
}

// Where portreg differs on purpose (documented in portreg::compat).

#[test]
fn port_0_is_refused_by_register_and_decode() {
    let registry = HttpEndpointRegistry::new();
    registry.register_backend_http_endpoint(id("fbuild"), 8002);
    assert_eq!(registry.register_backend_http_endpoint(id("fbuild"), 0), None);
    assert_eq!(registry.lookup("fbuild"), Some(8002));
    // The empty body is port 0 in proto3.
    assert_eq!(
        decode_and_register(&registry, id("zccache"), &[]),
        Err(BackendHttpReadyError::PortOutOfRange(0))
    );
    assert_eq!(registry.state("zccache"), None);
}

#[test]
fn errors_display_and_chain() {
    let out = BackendHttpReadyError::PortOutOfRange(70_000);
    assert!(out.to_string().contains("70000"));
    let decode =
        decode_and_register(&HttpEndpointRegistry::new(), id("x"), &[0xFF; 8]).unwrap_err();
    let boxed: Box<dyn std::error::Error> = Box::new(decode);
    assert!(boxed.source().is_some());
}

#[test]
fn the_registry_is_shared_between_threads() {
    fn send_sync<T: Send + Sync + Default + std::fmt::Debug>() {}
    send_sync::<HttpEndpointRegistry>();
    let registry = std::sync::Arc::new(HttpEndpointRegistry::default());
    let writers: Vec<_> = (0..4u16)
        .map(|t| {
            let registry = registry.clone();
            std::thread::spawn(move || {
                for i in 1..=100u16 {
                    registry.register_backend_http_endpoint(format!("backend-{t}"), i);
                    assert!(registry.lookup(&format!("backend-{t}")).is_some());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.len(), 4);
    assert!(snapshot.iter().all(|(_, port)| *port == Some(100)));
}
